"""What ``edgeser quantize --target tensorrt`` writes, beside the CPU targets (``cpu-vnni``, ``cpu-avx2``), on the
default model.

Runs docs/quantization.md's command once per target (``edgeser quantize default --precision int8 --calibration
../shared/data/ravdess/labels.csv --target tensorrt|cpu-vnni|cpu-avx2``, the guard as it is by default), then reads
every graph of each variant: Q/DQ nodes, the types of their zero points and how many are not 0, integer ops
(MatMulInteger, ConvInteger, QLinear*), the weights' megabytes by type, and the problems ``tensorrt_qdq_problems``
finds (what TensorRT's ONNX parser refuses: it takes only symmetric signed INT8 Q/DQ). Then times the speech graph of
FP32 and of each target on ONNX Runtime's CPU provider, 1 thread, 4 s of audio, interleaved, and reports each against
FP32. TensorRT itself has not run here: that is the parser's rule checked on the graphs, not an engine built.

    python -m edgeser_benchmarks.tensorrt_ready --data ../shared/data \
        --out benchmarks/results/tensorrt_ready.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

INTEGER_OPS = ("MatMulInteger", "ConvInteger", "QLinearMatMul", "QLinearConv", "QLinearAdd", "QLinearMul")


def graph_report(path: Path) -> dict[str, Any]:
    """Q/DQ counts, zero points by type and how many are not 0, integer ops, and TensorRT parser problems."""
    import onnx
    from onnx import numpy_helper

    from edgeser_export.tensorrt import tensorrt_qdq_problems

    model = onnx.load(str(path))
    ops = Counter(n.op_type for n in model.graph.node)
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    zero_points = [consts[n.input[2]] for n in model.graph.node
                   if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2 and n.input[2] in consts]
    problems = tensorrt_qdq_problems(model)
    weight_bytes: Counter[str] = Counter()
    for z in consts.values():
        weight_bytes[str(z.dtype)] += z.nbytes
    return {"nodes": len(model.graph.node), "QuantizeLinear": ops["QuantizeLinear"],
            "DequantizeLinear": ops["DequantizeLinear"],
            "zero_points_by_type": dict(Counter(str(z.dtype) for z in zero_points)),
            "zero_points_not_0": sum(int(np.any(z != 0)) for z in zero_points),
            "integer_ops": {k: ops[k] for k in INTEGER_OPS if ops[k]},
            "tensorrt_parser_problems": len(problems), "problem_examples": problems[:3],
            "megabytes": round(path.stat().st_size / 1e6, 2),
            "weight_megabytes_by_type": {k: round(v / 1e6, 2) for k, v in sorted(weight_bytes.items())}}


def time_speech(bundles: dict[str, Path], rounds: int) -> dict[str, Any]:
    """Speech-graph latency on 4 s of audio, 1 thread, the variants interleaved; medians, and each over FP32."""
    from edgeser import EmotionRecognizer
    from edgeser.options import RuntimeOptions
    from edgeser_benchmarks.stats import time_interleaved

    recs = {k: EmotionRecognizer.from_bundle(p, RuntimeOptions(threads=1)) for k, p in bundles.items()}
    wave = (0.1 * np.sin(np.linspace(0, 4000, 64000))).astype(np.float32)
    wave += np.random.default_rng(0).normal(0, 0.01, wave.size).astype(np.float32)
    seconds = time_interleaved({k: partial(rec.encode, wave, sample_rate=16000) for k, rec in recs.items()}, rounds)
    ms = {k: [1000 * t for t in v] for k, v in seconds.items()}
    fp32 = statistics.median(ms["fp32"])
    return {k: {"p50_ms": round(statistics.median(v), 2), "vs_fp32": round(statistics.median(v) / fp32, 2)}
            for k, v in ms.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    from edgeser import default
    from edgeser_benchmarks.suite import machine

    labels = (args.data / "ravdess" / "labels.csv").resolve()
    result: dict[str, Any] = {"protocol": (__doc__ or "").split("\n\n")[1].replace("\n", " "), "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="edgeser-trt-ready-") as tmp:
        bundles = {"fp32": default.resolve("default")}
        commands: dict[str, dict[str, Any]] = {}
        for target in ("tensorrt", "cpu-vnni", "cpu-avx2"):
            out = Path(tmp) / target
            command = ["edgeser", "quantize", "default", "--precision", "int8", "--calibration", str(labels),
                       "--target", target, "--out", str(out)]
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", "from edgeser.cli import main; main()", *command[1:]],
                                  capture_output=True, text=True)
            commands[target] = {"command": " ".join(command).replace(str(labels), "../shared/data/ravdess/labels.csv"),
                                "exit_status": done.returncode, "seconds": round(time.perf_counter() - t0, 1),
                                "last_lines": [ln for ln in done.stderr.splitlines() if ln.strip()][-4:]}
            print(f"--target {target}: exit {done.returncode} in {commands[target]['seconds']} s")
            if done.returncode == 0:
                bundles[target] = out
                manifest = json.loads((out / "bundle.json").read_text())
                graphs = [g for g in ("speech", "text", "fusion") if manifest.get(g)]
                quantized = {g: manifest[g].get("provenance", {}).get("quantization") for g in graphs}
                commands[target]["graphs"] = {g: {"converted": quantized[g] is not None,
                                                  "kept_float": len(quantized[g]["kept_float"]) if quantized[g] else 0,
                                                  **graph_report(out / manifest[g]["graph"])} for g in graphs}
                guard = manifest["speech"]["provenance"]["quantization"].get("guard", {})
                commands[target]["guard"] = {k: guard[k] for k in ("parent", "variant", "unseen_speakers")
                                             if k in guard}
        result["targets"] = commands
        parent = json.loads((bundles["fp32"] / "bundle.json").read_text())
        result["parent_speech_graph"] = graph_report(bundles["fp32"] / parent["speech"]["graph"])
        result["speech_latency_4s_1_thread"] = time_speech(bundles, args.rounds)
    result["rounds"] = args.rounds
    result["command"] = (f"python -m edgeser_benchmarks.tensorrt_ready --data {args.data} --rounds {args.rounds} "
                         f"--out {args.out}")
    from edgeser_benchmarks.provenance import write_result

    write_result(args.out, result)
    print(json.dumps({t: {g: {k: r[k] for k in ("zero_points_by_type", "zero_points_not_0", "integer_ops",
                                                 "tensorrt_parser_problems")} for g, r in c.get("graphs", {}).items()}
                      for t, c in commands.items()}, indent=2))
    print(json.dumps(result["speech_latency_4s_1_thread"], indent=2))


if __name__ == "__main__":
    main()
