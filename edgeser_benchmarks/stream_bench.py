"""Streaming figures: end-of-speech → result latency, utterance detection, and memory over a long stream.

- Detection and latency: held-out RAVDESS files (actors 17-20) joined with 1.5-3 s of room-level noise
  between them, streamed through ``EmotionRecognizer.stream`` at real-time pace; each file is one known
  utterance. A detection matches a file when it overlaps it; reported: missed files, false detections
  (overlapping no file), files cut in several pieces, and latency from the detector closing an utterance to
  its result, plus the end-of-speech → result delay including the silence the detector waits for.
- Memory: a synthetic stream of ``--hours`` (files and silence, cycled) run as fast as possible; peak RSS
  sampled every 60 s of stream; the slope of a least-squares line through the samples after the first
  10 minutes (MB per hour) says whether memory stays flat.

    python -m edgeser_benchmarks.stream_bench --bundle default --bundle int8=bundles/default-int8 \
        --out benchmarks/results/stream.json
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeser import EmotionRecognizer, RuntimeOptions, default
from edgeser.audio import SAMPLE_RATE, load_audio
from edgeser.datasets import load_ravdess
from edgeser.streaming import Source, StreamOptions
from edgeser_benchmarks.provenance import write_result
from edgeser_benchmarks.stats import percentiles
from edgeser_benchmarks.suite import machine

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess"
HELD_OUT = ("Actor_17", "Actor_18", "Actor_19", "Actor_20")


def joined(files: list[Path], seed: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The files with 1.5-3 s of -60 dBFS noise between them, and each file's (start, end) in seconds."""
    rng = np.random.default_rng(seed)
    parts, spans, t = [], [], 0.0
    for f in files:
        gap = (0.001 * rng.standard_normal(int(rng.uniform(1.5, 3.0) * SAMPLE_RATE))).astype(np.float32)
        wave = load_audio(f)
        parts += [gap, wave]
        t += gap.size / SAMPLE_RATE
        spans.append((t, t + wave.size / SAMPLE_RATE))
        t += wave.size / SAMPLE_RATE
    parts.append(np.zeros(SAMPLE_RATE, np.float32))
    return np.concatenate(parts), spans


def realtime_chunks(wave: np.ndarray, realtime: bool, chunk: int = 1600) -> Any:
    t0 = time.perf_counter()
    for i in range(0, wave.size, chunk):
        if realtime:
            delay = t0 + (i + chunk) / SAMPLE_RATE - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        yield wave[i : i + chunk]


def detection(rec: EmotionRecognizer, files: list[Path], seed: int) -> dict[str, Any]:
    wave, spans = joined(files, seed)
    options = StreamOptions()
    results = list(rec.stream(Source(realtime_chunks(wave, True), live=True, name="ravdess"), options))
    hits = {i: [r for r in results if r.start_s < b and r.end_s > a] for i, (a, b) in enumerate(spans)}
    false = [r for r in results if not any(r.start_s < b and r.end_s > a for a, b in spans)]
    latency = [r.latency_s for r in results if r.prediction is not None]
    errors = [r.error for r in results if r.prediction is None]
    return {"files": len(spans), "stream_s": round(wave.size / SAMPLE_RATE, 1), "detections": len(results),
            "missed": sum(not h for h in hits.values()), "false": len(false),
            "split": sum(len(h) > 1 for h in hits.values()), "recognition_errors": len(errors),
            "dropped": sum(r.dropped_before for r in results),
            "latency_ms": {k: round(1000 * v, 1) for k, v in percentiles(latency, (50, 95)).items()},
            "end_of_speech_to_result_ms": {k: round(1000 * (v + options.min_silence_s), 1)
                                           for k, v in percentiles(latency, (50, 95)).items()}}


def rss_mb() -> float:
    """Current resident set size (Linux), else the peak."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory(rec: EmotionRecognizer, files: list[Path], hours: float, seed: int) -> dict[str, Any]:
    wave, _ = joined(files, seed)
    total = int(hours * 3600 * SAMPLE_RATE)
    samples: list[tuple[float, float, float]] = []  # (stream minute, RSS MB, peak RSS MB)
    fed = [0]

    def chunks() -> Any:
        while fed[0] < total:
            for c in realtime_chunks(wave, False, 4000):
                fed[0] += c.size
                if fed[0] // (60 * SAMPLE_RATE) > len(samples):
                    samples.append((fed[0] / SAMPLE_RATE / 60, rss_mb(),
                                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
                yield c
                if fed[0] >= total:
                    return

    t0 = time.perf_counter()
    count = sum(1 for _ in rec.stream(Source(chunks(), live=False, name="loop"), StreamOptions(backpressure="block")))
    wall = time.perf_counter() - t0
    later = [s for s in samples if s[0] >= 10]

    def slope(k: int) -> float:
        x, y = np.array([s[0] for s in later]), np.array([s[k] for s in later])
        return round(float(np.polyfit(x, y, 1)[0] * 60), 2) if x.size > 2 else float("nan")

    return {"stream_hours": hours, "utterances": count, "wall_s": round(wall, 1),
            "real_time_factor": round(wall / (hours * 3600), 4),
            "rss_mb_first_last_minute": [round(samples[0][1], 1), round(samples[-1][1], 1)] if samples else None,
            "peak_rss_mb_first_last_minute": [round(samples[0][2], 1), round(samples[-1][2], 1)] if samples else None,
            "rss_slope_mb_per_hour_after_10_min": slope(1), "peak_rss_slope_mb_per_hour_after_10_min": slope(2),
            "samples_per_minute": [[round(v, 2) for v in s] for s in samples]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", action="append", default=None, help="NAME=PATH or PATH or default; repeat")
    ap.add_argument("--files", type=int, default=40, help="held-out files in the detection stream")
    ap.add_argument("--hours", type=float, default=1.0, help="length of the memory stream")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    ds = load_ravdess(DATA)
    rng = np.random.default_rng(args.seed)
    held = [u.path for u in ds.utterances if u.group in HELD_OUT and u.path is not None]
    files = [held[i] for i in rng.permutation(len(held))[: args.files]]
    out: dict[str, Any] = {"protocol": __doc__.split("\n\n")[1], "machine": machine(), "variants": {}}
    for spec in args.bundle or ["default"]:
        name, _, path = spec.partition("=") if "=" in spec else (spec, "", spec)
        rec = EmotionRecognizer.from_bundle(default.resolve(path), RuntimeOptions(threads=args.threads))
        print(f"{name}: detection and latency at real-time pace ({len(files)} files)")
        out["variants"][name] = {"detection": detection(rec, files, args.seed)}
        print(json.dumps(out["variants"][name]["detection"]))
    first = (args.bundle or ["default"])[0]
    name, _, path = first.partition("=") if "=" in first else (first, "", first)
    print(f"{name}: memory over a {args.hours} h stream, as fast as possible")
    rec = EmotionRecognizer.from_bundle(default.resolve(path), RuntimeOptions(threads=args.threads))
    out["memory"] = {"variant": name, **memory(rec, files, args.hours, args.seed)}
    print(json.dumps({k: v for k, v in out["memory"].items() if k != "samples_per_minute"}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, out)


if __name__ == "__main__":
    main()
