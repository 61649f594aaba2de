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


def percentiles(values: Sequence[float], qs: Sequence[int] = (50, 90, 99)) -> dict[str, float]:
    """``{"p50": ..., "p90": ..., "p99": ...}`` by linear interpolation between order statistics (numpy's
    default), so small samples are reported without pretending to more precision than they have."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no values")
    return {f"p{q}": float(np.percentile(v, q)) for q in qs}


def interleaved(variants: Sequence[str], repeats: int, warmup: int = 1) -> list[tuple[str, bool]]:
    """Run order ``[(variant, is_warmup), ...]``: ``warmup`` untimed rounds, then ``repeats`` timed rounds,
    each round visiting every variant once (A B C A B C ...), so drift of the machine hits all alike."""
    if not variants or repeats < 1 or warmup < 0:
        raise ValueError("need at least one variant, repeats >= 1 and warmup >= 0")
    return [(v, r < warmup) for r in range(warmup + repeats) for v in variants]


def paired_ratios(times: Sequence[float], reference: Sequence[float]) -> dict[str, float]:
    """Round-by-round ratios ``times[i] / reference[i]`` (same round = same machine state): the median and
    the 10th-90th percentile spread."""
    t, r = np.asarray(times, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if t.shape != r.shape or t.size == 0:
        raise ValueError("ratios need two equally long, non-empty series")
    ratio = t / r
    return {"median": float(np.median(ratio)), "p10": float(np.percentile(ratio, 10)),
            "p90": float(np.percentile(ratio, 90))}


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both (lower latency, higher accuracy), by latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front
