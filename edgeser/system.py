"""What this machine offers for inference: the CPU's model and the instruction sets that decide INT8 speed and
accuracy, read once from ``/proc/cpuinfo`` (``edgeser inspect --system`` prints them; every result file and
benchmark row records them).

Why the flags matter for INT8: ONNX Runtime's x86 kernels multiply uint8 activations by int8 weights (U8S8). With
VNNI (``avx512_vnni``, ``avx_vnni``) or AMX (``amx_int8``) each product is accumulated in 32 bits. Without them
(AVX2 only, e.g. many AMD EPYC and older Intel parts) the kernels use ``vpmaddubsw``, which adds pairs of
products into 16 bits and saturates: two products of 255 x 127 overflow int16, and a model that held its accuracy
on a VNNI machine loses points here. ONNX Runtime's documentation names the remedy used by ``--target
cpu-avx2``: weights quantized to 7 bits (``reduce_range``), so no pair of products can exceed int16
(2 x 255 x 64 = 32,640 < 32,767). Integer arithmetic that does not saturate is exact, so a 7-bit variant gives the
same outputs on every x86 CPU, and its accuracy measured on any of them holds on all.
"""

from __future__ import annotations

import os
import platform
from functools import cache
from pathlib import Path
from typing import Any

CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
"""The instruction sets that matter for inference here: wide float SIMD, and 8-bit dot products (x86 VNNI and AMX,
Arm dot product and int8 matrix multiply)."""
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
"""x86 flags under which ONNX Runtime's U8S8 kernels accumulate in 32 bits (no int16 saturation)."""
INT8_TARGETS = ("cpu-vnni", "cpu-avx2", "arm")
"""The CPU schemes of ``edgeser quantize --target`` (besides ``tensorrt``), one per kind of CPU kernel."""


@cache
def _cpuinfo() -> str:
    path = Path("/proc/cpuinfo")
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor string where that has none, as on Arm)."""
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """The :data:`CPU_FLAGS` this CPU has, in that order (empty where ``/proc/cpuinfo`` cannot be read)."""
    flags: set[str] = set()
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, Arm
            flags |= set(value.split())
    return [f for f in CPU_FLAGS if f in flags]


def int8_target(flags: list[str] | None = None, arch: str | None = None) -> str:
    """The INT8 scheme that keeps its accuracy on this CPU: ``cpu-vnni`` (x86 with VNNI or AMX), ``cpu-avx2`` (x86
    without: 7-bit weights), or ``arm`` (aarch64)."""
    flags = cpu_flags() if flags is None else flags
    arch = (arch or platform.machine()).lower()
    if arch in ("aarch64", "arm64") or arch.startswith("arm"):
        return "arm"
    return "cpu-vnni" if set(flags) & set(VNNI_FLAGS) else "cpu-avx2"


INT8_CALIBRATION = {"cpu-avx2": "dynamic"}
"""How ``edgeser quantize --method auto`` finds a target's activation ranges (``minmax`` calibration for any other
target). On an AVX2-only CPU, ``dynamic`` (MatMul inputs ranged as the graph runs, convolutions calibrated by
percentile) let the ``cpu-avx2`` variant of the default hold its accuracy budget with 4 nodes kept in float, at 0.70x
FP32's time at 4 s, where percentile calibration kept 6 at 0.73x and minmax 12 at 0.87x
(``benchmarks/results/int8_dynamic.json``, ``int8_methods.json``). The other targets are measured with
minmax only."""


def int8_method(target: str) -> str:
    """How ``target``'s activation ranges are found (:data:`INT8_CALIBRATION`)."""
    return INT8_CALIBRATION.get(target, "minmax")


def int8_warning(target: str, flags: list[str] | None = None, arch: str | None = None) -> str | None:
    """Why a variant quantized for ``target`` may lose accuracy on this CPU, or None where it holds.

    Only one combination does: the VNNI scheme (8-bit weights) on an x86 CPU without VNNI or AMX, where its
    products can saturate 16-bit sums. The 7-bit scheme holds everywhere (slower than 8-bit on VNNI CPUs only
    by what the weights lose)."""
    here = int8_target(flags, arch)
    if target == "cpu-vnni" and here == "cpu-avx2":
        return ("it was quantized for CPUs with VNNI (8-bit weights); this CPU has no VNNI or AMX "
                f"(flags: {', '.join(cpu_flags() if flags is None else flags) or 'none'}), where ONNX Runtime's "
                "int8 kernels can saturate and lose accuracy: quantize it here with --target cpu-avx2 (7-bit "
                "weights, exact on every x86 CPU)")
    return None


def int8_mismatch(provenance: dict[str, Any]) -> str | None:
    """:func:`int8_warning` for a graph from its bundle.json provenance (its ``quantization`` record), or None for a
    float graph. Versions before the ``cpu-*`` targets recorded ``cpu`` for the 8-bit scheme."""
    q = provenance.get("quantization") or {}
    if q.get("precision") not in ("int8", "int8-dynamic") or q.get("reduce_range"):
        return None
    return int8_warning("cpu-vnni") if q.get("target") in ("cpu", "cpu-vnni") else None


def describe() -> dict[str, Any]:
    """This machine as ``edgeser inspect --system`` shows it."""
    import numpy as np
    import onnxruntime as ort

    flags = cpu_flags()
    return {"cpu": cpu_model(), "arch": platform.machine(), "cores": os.cpu_count(), "cpu_flags": flags,
            "int8_target": int8_target(flags), "onnxruntime": ort.__version__,
            "providers": ort.get_available_providers(), "numpy": np.__version__,
            "python": platform.python_version(), "os": platform.platform()}


__all__ = ["CPU_FLAGS", "INT8_CALIBRATION", "INT8_TARGETS", "VNNI_FLAGS", "cpu_flags", "cpu_model", "describe",
           "int8_method", "int8_mismatch", "int8_target", "int8_warning"]
