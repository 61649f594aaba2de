"""ctc-beam-decoder against pyctcdecode: the same top beam, and the time of each.

edgeser decodes with ctc-beam-decoder, a C++ drop-in for pyctcdecode (whose only release declares numpy<2).
This draws random CTC log-probabilities over a character vocabulary (blank, delimiter, 26 letters and an
apostrophe, labelled as edgeser labels them: "" for the blank, " " for the delimiter, private-use characters for
the rest), each a noisy path of 20-300 frames with a random sharpness, decodes each with both (beam width 32,
as edgeser), counts identical top beams, and times both on the same inputs (interleaved).

    python -m edgeser_benchmarks.studies.beam_agreement --cases 300 --out benchmarks/results/beam_agreement.json

Needs both: ``pip install "edgeser[align]"`` and ``pip install --no-deps pyctcdecode==0.5.0 pygtrie``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeser.alignment.ctc.decode import _labels
from edgeser_benchmarks.provenance import write_result
from edgeser_benchmarks.suite import machine

TOKENS = ("<pad>", "|", *[chr(97 + i) for i in range(26)], "'")


def cases(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        frames = int(rng.integers(20, 300))
        logits = rng.standard_normal((frames, len(TOKENS))) * rng.uniform(0.5, 4)
        path = rng.integers(0, len(TOKENS), frames)
        logits[np.arange(frames), path] += rng.uniform(1, 6)
        out.append((logits - np.log(np.exp(logits).sum(1, keepdims=True))).astype(np.float32))
    return out


def compare(cases: int = 300, seed: int = 0, beam_width: int = 32) -> dict[str, Any]:
    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)  # it warns that kenlm is absent
    import ctc_beam_decoder
    import pyctcdecode

    labels = _labels(TOKENS, 0, "|")
    ours, reference = ctc_beam_decoder.build_ctcdecoder(labels), pyctcdecode.build_ctcdecoder(labels)
    identical, t_ours, t_ref, frames, differ = 0, 0.0, 0.0, 0, []
    for i, logp in enumerate(globals()["cases"](cases, seed)):
        t0 = time.perf_counter()
        a = reference.decode_beams(logp, beam_width=beam_width)[0][0]
        t1 = time.perf_counter()
        b = ours.decode_beams(logp, beam_width=beam_width)[0][0]
        t2 = time.perf_counter()
        t_ref, t_ours, frames = t_ref + t1 - t0, t_ours + t2 - t1, frames + logp.shape[0]
        identical += a == b
        if a != b:
            differ.append(i)
    return {"cases": cases, "identical": identical, "differing_cases": differ, "frames": frames,
            "beam_width": beam_width, "seconds": {"ctc_beam_decoder": round(t_ours, 3), "pyctcdecode": round(t_ref, 3)},
            "time_ratio": round(t_ours / t_ref, 4),
            "versions": {m: _version(m) for m in ("ctc-beam-decoder", "pyctcdecode")}}


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    result = {"protocol": (__doc__ or "").split("\n\n")[1].replace("\n", " "), "machine": machine(),
              **compare(args.cases, args.seed),
              "command": f"python -m edgeser_benchmarks.studies.beam_agreement --cases {args.cases} --out {args.out}"}
    write_result(args.out, result)
    print(f"{result['identical']}/{result['cases']} identical top beams; ctc-beam-decoder takes "
          f"x{result['time_ratio']} of pyctcdecode's time")


if __name__ == "__main__":
    main()
