"""Summaries shared by the benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def error_summary(errors_s: Sequence[float], thresholds_ms: Sequence[int] = (20, 50, 100)) -> dict[str, float]:
    """Boundary errors (seconds, signed): count, median and p90 of the absolute error in ms, the signed
    median (positive = late), and the share within each threshold."""
    signed = 1000 * np.asarray(errors_s, dtype=np.float64)
    e = np.abs(signed)
    return {"count": int(e.size), "median_ms": round(float(np.median(e)), 1),
            "signed_median_ms": round(float(np.median(signed)), 1), "p90_ms": round(float(np.percentile(e, 90)), 1),
            **{f"within_{t}ms": round(float(np.mean(e <= t)), 3) for t in thresholds_ms}}
