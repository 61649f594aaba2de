"""Speech-encoder latency of several bundles side by side: e.g. a distilled student against its teacher.

Each bundle's speech graph runs on the same clips (1, 4 and 10 s cut from RAVDESS audio, one thread),
the variants interleaved round by round after a warm-up round; reported per length: p50/p90 per variant
and the round-by-round ratio to the first variant (median, p10-p90). Only the encoder is timed: the rest
of the pipeline (segmentation, pooling, heads) is what ``edgeser bench`` measures.

    python -m edgeser_benchmarks.studies.encoder_speed --bundle teacher=default --bundle student=bundles/student \\
        --out benchmarks/results/encoder_speed.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeser import EmotionRecognizer, RuntimeOptions, default
from edgeser.audio import load_audio
from edgeser_benchmarks.provenance import write_result
from edgeser_benchmarks.stats import interleaved, paired_ratios, percentiles

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "ravdess"
CLIP = DATA / "audio" / "Actor_17" / "03-01-05-02-01-01-17.flac"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", action="append", required=True, help="NAME=PATH (or 'default'); the first is "
                    "the reference of the ratios")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    bundles = dict(b.split("=", 1) if "=" in b else (b, b) for b in args.bundle)
    options = RuntimeOptions(threads=1)
    recs = {name: EmotionRecognizer.from_bundle(default.resolve(path), options) for name, path in bundles.items()}
    wave = load_audio(CLIP)
    result: dict[str, Any] = {"protocol": __doc__.split("\n\n")[1], "threads": 1, "rounds": args.rounds,
                              "clip": str(CLIP.relative_to(DATA)), "bundles": bundles,
                              "parameters": {n: r.speech.provenance.get("source", {}).get("parameters")
                                             for n, r in recs.items()}, "lengths": {}}
    names = list(recs)
    for seconds in (1, 4, 10):
        clip = np.resize(wave, seconds * 16000)
        times: dict[str, list[float]] = {n: [] for n in names}
        for name, warm in interleaved(names, args.rounds, warmup=1):
            t0 = time.perf_counter()
            recs[name].encode(clip, sample_rate=16000)
            if not warm:
                times[name].append(time.perf_counter() - t0)
        result["lengths"][f"{seconds}s"] = {
            n: {"ms": {k: round(1000 * v, 2) for k, v in percentiles(times[n], (50, 90)).items()},
                "ratio_to_" + names[0]: {k: round(v, 3) for k, v in paired_ratios(times[n], times[names[0]]).items()}}
            for n in names}
        print(seconds, json.dumps(result["lengths"][f"{seconds}s"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
