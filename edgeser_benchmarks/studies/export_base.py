"""Export time, bundle size, parity and encoder latency for full-size configs, per exporter.

wav2vec2-base architecture (random weights: latency and size do not depend on the values) plus the
real all-MiniLM-L6-v2. Both exporters are run; the resulting bundles are then timed side by side,
interleaved (A B A B ...) so machine drift affects both alike.

    python -m edgeser_benchmarks.studies.export_base --out benchmarks/results/export_base.json
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
from edgeser_benchmarks.provenance import write_result
from edgeser_benchmarks.suite import machine
from edgeser_export.pipeline import export_bundle
from edgeser_export.sources import load_text, speech_from_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="wav2vec2-base")
    ap.add_argument("--exporters", default="dynamo,torchscript")
    ap.add_argument("--audio-s", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    exporters = args.exporters.split(",")
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        recs = {}
        for exporter in exporters:
            speech, text = speech_from_config(args.config), load_text("minilm")
            t0 = time.perf_counter()
            m = export_bundle(Path(tmp) / exporter, speech=speech, text=text, exporter=exporter, progress=print)
            if m.speech is None or m.text is None:
                raise RuntimeError("export produced no speech or text section")
            rows[exporter] = {
                "export_total_s": round(time.perf_counter() - t0, 1),
                "speech_export_s": m.speech.provenance["export_seconds"],
                "text_export_s": m.text.provenance["export_seconds"],
                "speech_onnx_mb": round(m.files["speech.onnx"].bytes / 1e6, 1),
                "bundle_mb": round(sum(f.bytes for f in m.files.values()) / 1e6, 1),
                "speech_parity": m.speech.provenance["parity"]["max_abs_diff"],
                "text_parity": m.text.provenance["parity"]["max_abs_diff"],
                "opset": m.speech.provenance["opset"],
                "speech_ms": [], "text_ms": [],
            }
            recs[exporter] = EmotionRecognizer.from_bundle(Path(tmp) / exporter, RuntimeOptions(threads=args.threads))
        rng = np.random.default_rng(0)
        audio = (0.1 * rng.standard_normal(int(args.audio_s * 16000))).astype(np.float32)
        sentence = "I can't believe you did that again, it's the third time this week!"
        for rec in recs.values():  # warm-up
            rec.encode(audio, sample_rate=16000)
            rec.embed_text(sentence)
        for _ in range(args.repeats):
            for exporter, rec in recs.items():
                speech_s = rec.encode(audio, sample_rate=16000).timings.speech_encoder_s
                assert speech_s is not None  # encode() times its speech graph
                rows[exporter]["speech_ms"].append(1e3 * speech_s)
                rows[exporter]["text_ms"].append(1e3 * (rec.embed_text(sentence).timings.text_encoder_s or 0.0))
    ratios = {}
    if len(exporters) == 2:  # per interleaved pair, so drift cancels; median and the 10th-90th percentile spread
        a, b = exporters
        for key in ("speech_ms", "text_ms"):
            r = np.array(rows[a][key]) / np.array(rows[b][key])
            ratios[f"{key[:-3]}_{a}_over_{b}"] = {"median": round(float(np.median(r)), 3),
                                                  "p10": round(float(np.percentile(r, 10)), 3),
                                                  "p90": round(float(np.percentile(r, 90)), 3)}
    for row in rows.values():
        for key in ("speech_ms", "text_ms"):
            row[key + "_p50"] = round(float(np.median(row.pop(key))), 1)
    result = {"machine": machine(),
              "config": args.config, "audio_s": args.audio_s, "threads": args.threads, "repeats": args.repeats,
              "exporters": rows, "latency_ratios": ratios}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
