"""Corpus-job throughput: ``edgeser batch`` in this process against Ray with 1 and 2 local workers, side by side.

The same RAVDESS files (``--files``, from actors 1 up, each 3-4 s) go through the default model three ways, in
rounds (sequential, Ray x1, Ray x2, then again), each into a fresh job folder: one process; and a local Ray
instance (started once before the rounds, as a cluster's would already be running) with 1 and 2 recognizer
actors of one ONNX Runtime thread each. Reported per way: the median files/s and audio seconds per second over
the rounds, the ratio to the sequential run, and whether the records equal the sequential run's. On paper, N
nodes like this one give N times the per-node rate as long as the driver keeps up: the driver's own cost per
file (writing the shards) is measured and its ceiling reported.

Then ``edgeser evaluate``'s feature extraction (``--feature-files`` four-class utterances) the same three ways
(see :func:`feature_rounds`).

    python -m edgeser_benchmarks.batch_scale --files 960 --rounds 2 --feature-files 480 \
        --out benchmarks/results/batch_scale.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from edgeser.batch import BatchConfig, BatchItem, read_records, run, write_shard
from edgeser_benchmarks.provenance import write_result
from edgeser_benchmarks.suite import machine

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess" / "audio"


def stable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in ("seconds", "timings")} for r in records]


def feature_rounds(count: int, ravdess: Path, rounds: int, tmp: Path, ways: dict[str, int | None]) -> dict[str, Any]:
    """``edgeser evaluate``'s slow part, the same three ways: the frame features of the first ``count`` utterances
    of the four-class RAVDESS set (the default model's head level) computed by
    :func:`edgeser_export.features.compute` into a fresh cache, in this process and by 1 and 2 feature actors on
    the running Ray instance; the arrays compared with this process's, bit for bit."""
    import numpy as np

    from edgeser import EmotionRecognizer
    from edgeser.datasets import open_dataset
    from edgeser.options import RuntimeOptions
    from edgeser_export.features import compute

    dataset = open_dataset(ravdess)
    dataset = dataset.subset(list(range(min(count, len(dataset.utterances)))))
    rec = EmotionRecognizer.from_bundle("default", RuntimeOptions(threads=1))
    seconds: dict[str, list[float]] = {w: [] for w in ways}
    same: dict[str, bool] = {}
    reference = None
    for r in range(rounds):
        for way, workers in ways.items():
            t0 = time.perf_counter()
            got = compute(rec, dataset, ("frame",), False, tmp / f"features-{r}-{workers}",
                          ray_address="local" if workers else None, workers=workers)
            seconds[way].append(time.perf_counter() - t0)
            arrays = [it["frame"] for it in got.items]
            reference = reference if reference is not None else arrays
            same[way] = same.get(way, True) and len(arrays) == len(reference) and all(
                np.array_equal(a, b) for a, b in zip(arrays, reference, strict=True))
            print(f"features, round {r + 1}, {way}: {len(dataset.utterances) / seconds[way][-1]:.2f} files/s")
    base = statistics.median(seconds["this process"])
    return {"files": len(dataset.utterances), "levels": ["frame"],
            "ways": {way: {"seconds": [round(s, 2) for s in v],
                           "files_per_s": round(len(dataset.utterances) / statistics.median(v), 2),
                           "speed_vs_this_process": round(base / statistics.median(v), 2),
                           "features_equal_this_process": same[way]} for way, v in seconds.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=960)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--feature-files", type=int, default=480, help="utterances for the feature-extraction rounds")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    import ray

    files = sorted(args.data.glob("Actor_*/*.flac"))[: args.files]
    if len(files) < args.files:
        raise SystemExit(f"{args.data}: {len(files)} files, {args.files} asked for")
    items = [BatchItem(i, str(p.relative_to(args.data)), str(p)) for i, p in enumerate(files)]
    config = BatchConfig(shard_size=64, threads=1)
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_start_s = time.perf_counter() - t0
    ways = {"this process": None, "ray, 1 worker": 1, "ray, 2 workers": 2}
    seconds: dict[str, list[float]] = {w: [] for w in ways}
    same: dict[str, bool] = {}
    audio_s = 0.0
    reference: list[dict[str, Any]] | None = None
    with tempfile.TemporaryDirectory(prefix="edgeser-batch-scale-") as tmp:
        for r in range(args.rounds):
            for way, workers in ways.items():
                out = Path(tmp) / f"{r}-{way.replace(' ', '_').replace(',', '')}"
                t0 = time.perf_counter()
                summary = run(items, out, config, ray_address="local" if workers else None, workers=workers)
                seconds[way].append(time.perf_counter() - t0)
                records = list(read_records(out))
                audio_s = summary["audio_s_ok"]
                if reference is None:
                    reference = stable(records)
                same[way] = same.get(way, True) and stable(records) == reference
                print(f"round {r + 1}, {way}: {len(items) / seconds[way][-1]:.2f} files/s")
        records = list(read_records(Path(tmp) / "0-this_process"))
        t0 = time.perf_counter()
        for k in range(0, len(records), 64):
            write_shard(Path(tmp), 900 + k // 64, records[k : k + 64])
        write_s_per_file = (time.perf_counter() - t0) / len(records)
        features = feature_rounds(args.feature_files, args.data.parent, args.rounds, Path(tmp), ways)
    ray.shutdown()
    base = statistics.median(seconds["this process"])
    rows: dict[str, dict[str, Any]]
    rows = {way: {"seconds": [round(s, 2) for s in v], "files_per_s": round(len(items) / statistics.median(v), 2),
                  "audio_s_per_s": round(audio_s / statistics.median(v), 1),
                  "speed_vs_this_process": round(base / statistics.median(v), 2),
                  "records_equal_this_process": same[way]} for way, v in seconds.items()}
    node = rows["ray, 2 workers"]["files_per_s"]
    ceiling = round(1 / write_s_per_file, 0)
    result = {"protocol": (__doc__ or "").split("\n\n")[1].replace("\n", " "), "machine": machine(),
              "files": len(items), "audio_s": audio_s, "rounds": args.rounds, "ray_start_s": round(ray_start_s, 1),
              "ways": rows, "driver_write_ms_per_file": round(1000 * write_s_per_file, 3),
              "on_paper": {"per_node_files_per_s": node, "driver_ceiling_files_per_s": ceiling,
                           "nodes": {n: min(round(n * node, 1), ceiling) for n in (1, 4, 16, 64)},
                           "assumes": "nodes like this one (2 cores, 2 workers each), files read from storage as "
                                      "fast as here, one driver writing the shards"},
              "features": features,
              "command": f"python -m edgeser_benchmarks.batch_scale --files {args.files} --rounds {args.rounds} "
                         f"--feature-files {args.feature_files} --out {args.out}"}
    write_result(args.out, result)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
