"""Power on a Jetson from ``tegrastats`` logs, to put beside ``edgeser bench`` results. UNTESTED ON A JETSON.

``tegrastats --interval 500 --logfile tegra.log`` writes one line per sample with each power rail as
``NAME <now>mW/<average>mW`` (e.g. ``VDD_IN 4952mW/4952mW VDD_CPU_GPU_CV 1082mW/1082mW``; rail names differ
between Orin, Xavier and Nano modules). :func:`power_summary` gives mean and peak milliwatts per rail.

    python -m edgeser_benchmarks.devices.jetson tegra.log > power.json
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable

import numpy as np

_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)mW/(\d+)mW")


def power_summary(lines: Iterable[str]) -> dict[str, dict[str, float]]:
    """``{rail: {"mean_mw", "peak_mw", "samples"}}`` from tegrastats lines (lines without rails are skipped)."""
    values: dict[str, list[int]] = {}
    for line in lines:
        for name, now, _ in _RAIL.findall(line):
            values.setdefault(name, []).append(int(now))
    return {name: {"mean_mw": round(float(np.mean(v)), 1), "peak_mw": float(max(v)), "samples": len(v)}
            for name, v in values.items()}


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
        print(json.dumps(power_summary(f), indent=2))
