"""FP32 vs static INT8 vs dynamic INT8 on full-size graphs, side by side, on this CPU.

wav2vec2-base-size speech graph and bert-base-size text graph, random weights (latency does not depend on
values; agreement with FP32 on random weights says little about a trained model, whose accuracy is measured
with ``edgeser bench`` on the default model). Each variant is made with ``edgeser_export.quantize`` with its guard
switched off (``min_cosine=0``), so that the plain recipe is timed; its agreement with FP32 is reported.
Static INT8: Q/DQ, per-channel int8 weights, uint8 activations, MatMul/Gemm/Conv, minmax calibration on
16 RAVDESS clips of 1-8 s. Dynamic INT8: MatMul/Gemm. One thread, 4 s of audio, 32 tokens; variants
interleaved round by round, ratios to FP32 per round. Each speech graph is also profiled once by op type
(ONNX Runtime's profiler), to show where INT8 does and does not save time on this CPU.

    python -m edgeser_benchmarks.studies.precision --out benchmarks/results/precision.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeser import EmotionRecognizer, RuntimeOptions
from edgeser.audio import load_audio
from edgeser.datasets import load_ravdess
from edgeser.model.graph_io import speech_feeds
from edgeser_benchmarks.provenance import write_result
from edgeser_benchmarks.stats import interleaved, paired_ratios, percentiles
from edgeser_benchmarks.suite import machine
from edgeser_calibration.sets import build
from edgeser_export.pipeline import export_bundle
from edgeser_export.quantize import QuantizeConfig, quantize_bundle
from edgeser_export.sources import speech_from_config, text_from_config

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "ravdess"
SENTENCE = ("Well, I guess we will just have to wait and see what happens tomorrow morning at nine, "
            "when the others finally arrive here.")


def op_profile(path: Path, feeds: dict[str, np.ndarray], runs: int = 3) -> dict[str, float]:
    """Milliseconds per run spent in each op type (after ONNX Runtime's graph fusions), one thread; the
    first run is a warm-up and not counted."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        so.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        for _ in range(runs + 1):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    run_starts = sorted(e["ts"] for e in events if e.get("name") == "model_run")
    by_op: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= run_starts[1]:
            by_op[e["args"]["op_name"]] = by_op.get(e["args"]["op_name"], 0.0) + e["dur"] / 1000 / runs
    return {k: round(v, 1) for k, v in sorted(by_op.items(), key=lambda kv: -kv[1]) if v >= 1.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgeser-precision")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    fp32 = work / "fp32"
    t0 = time.perf_counter()
    if not fp32.is_dir():
        export_bundle(fp32, speech=speech_from_config("wav2vec2-base"), text=text_from_config("bert-base"),
                      exporter="torchscript", progress=print)
    export_s = time.perf_counter() - t0
    ds = load_ravdess(DATA)
    cset = build(ds, work / "calibration", n=16, seed=0, min_s=1.0, max_s=8.0, overwrite=True)
    reports: dict[str, Any] = {}
    variants = {"fp32": fp32}
    for name, config in (("int8-static", QuantizeConfig("int8", min_cosine=0.0, fallback_steps=0)),
                         ("int8-dynamic", QuantizeConfig("int8-dynamic", min_cosine=0.0))):
        out = work / name
        t0 = time.perf_counter()
        reports[name] = quantize_bundle(fp32, out, config, cset, overwrite=True, progress=print)
        reports[name]["wall_s"] = round(time.perf_counter() - t0, 1)
        variants[name] = out
    options = RuntimeOptions(threads=1, verify_hashes=False)
    recs = {k: EmotionRecognizer.from_bundle(v, options) for k, v in variants.items()}
    wave = load_audio(DATA / "audio" / "Actor_01" / "03-01-05-02-01-01-01.flac")
    four = np.resize(wave, 64000)
    tokens = recs["fp32"]._text_feeds(SENTENCE)["input_ids"].shape[1]
    speech: dict[str, list[float]] = {k: [] for k in variants}
    text: dict[str, list[float]] = {k: [] for k in variants}
    for name, warm in interleaved(list(variants), args.rounds, warmup=1):
        rec = recs[name]
        t0 = time.perf_counter()
        rec.encode(four, sample_rate=16000)
        t1 = time.perf_counter()
        rec.embed_text(SENTENCE)
        t2 = time.perf_counter()
        if not warm:
            speech[name].append(t1 - t0)
            text[name].append(t2 - t1)
    rows = []
    feeds, _ = speech_feeds([four], recs["fp32"].speech)
    for name in variants:
        size = sum(f.bytes for f in recs[name].bundle.manifest.files.values())
        rows.append({"variant": name, "bundle_mb": round(size / 1e6, 1),
                     "speech_4s_ms": {k: round(1000 * v, 1) for k, v in percentiles(speech[name]).items()},
                     "text_ms": {k: round(1000 * v, 2) for k, v in percentiles(text[name]).items()},
                     "speech_ratio_to_fp32": {k: round(v, 3) for k, v in paired_ratios(speech[name],
                                                                                          speech["fp32"]).items()},
                     "text_ratio_to_fp32": {k: round(v, 3) for k, v in paired_ratios(text[name],
                                                                                       text["fp32"]).items()},
                     "agreement_with_fp32": {g: r["agreement"] for g, r in reports[name]["graphs"].items()}
                     if name in reports else None,
                     "speech_ms_by_op_type": op_profile(variants[name] / "speech.onnx", feeds),
                     "quantize_s": reports[name]["wall_s"] if name in reports else None})
        print(json.dumps(rows[-1]))
    result = {"protocol": __doc__.split("\n\n")[1], "machine": machine(), "threads": 1, "audio_s": 4.0,
              "tokens": int(tokens), "rounds": args.rounds, "export_s": round(export_s, 1),
              "calibration": cset.describe(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
