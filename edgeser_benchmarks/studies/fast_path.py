"""What the whole pipeline costs over its speech encoder: ``predict`` against ``encode`` on the same clips.

For each bundle and clip length (1, 4, 10 s of real RAVDESS speech, leading and trailing silence cut, joined),
interleaved rounds time
``rec.encode(clip)`` (audio checks + the speech graph), ``rec.predict(clip)`` (the whole pipeline: for a
frames-only head no aligner and no decoder run), ``rec.predict(clip, check_speech=True)`` (silero-vad first, as
``edgeser predict`` does where it is installed) and ``rec.predict(clip, segments=True)`` (timed words,
syllables and phones on request: hama's aligner and decoder), on 1 ONNX Runtime thread. Reported: p50 per
call and the round-by-round ratio of each to ``encode`` (median, p10-p90). Goal for the frames-only default:
``predict`` at most 1.15x ``encode``.

    python -m edgeser_benchmarks.studies.fast_path --bundle default --out benchmarks/results/fast_path.json
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from edgeser import EmotionRecognizer, RuntimeOptions
from edgeser.datasets import load_ravdess
from edgeser_benchmarks.provenance import write_result
from edgeser_benchmarks.stats import latency_summary, time_interleaved
from edgeser_benchmarks.studies.whisper_probe import DATA
from edgeser_benchmarks.suite import machine
from edgeser_benchmarks.timing import speech_clips


def calls(rec: EmotionRecognizer, segments: bool) -> dict[str, Callable[[np.ndarray], Any]]:
    out: dict[str, Callable[[np.ndarray], Any]] = {
        "encode": lambda w: rec.encode(w, sample_rate=16000),
        "predict": lambda w: rec.predict(w, sample_rate=16000)}
    if importlib.util.find_spec("silero_vad") is not None:
        out["predict --speech-check"] = lambda w: rec.predict(w, sample_rate=16000, check_speech=True)
    if segments:
        out["predict --segments"] = lambda w: rec.predict(w, sample_rate=16000, segments=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", action="append", required=True, metavar="[NAME=]PATH")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--no-segments", action="store_true", help="skip the predict --segments rows (no hama)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    audio = speech_clips(load_ravdess(DATA))
    result: dict[str, Any] = {"machine": machine(), "threads": 1, "repeats": args.repeats, "bundles": {}}
    for spec in args.bundle:
        name, _, path = spec.rpartition("=")
        rec = EmotionRecognizer.from_bundle(path, RuntimeOptions.cpu(threads=1))
        rec.warm_up()
        variants = calls(rec, not args.no_segments)
        rows: dict[str, Any] = {"needs_segments": rec._needs_segments()}
        for clip, wave in audio.items():
            times = time_interleaved({k: partial(f, wave) for k, f in variants.items()}, args.repeats)
            rows[clip] = latency_summary(times, "encode", "ratio_to_encode")
            print(f"{name or path} {clip}: " + "; ".join(
                f"{k} {v['p50_ms']:.1f} ms (x{v['ratio_to_encode']['median']:.2f})" for k, v in rows[clip].items()))
        result["bundles"][name or path] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
