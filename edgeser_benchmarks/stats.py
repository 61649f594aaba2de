"""Summaries shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

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


def time_interleaved(calls: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 1
                     ) -> dict[str, list[float]]:
    """Seconds of each timed call of each of ``calls``, run in :func:`interleaved` order (warm-up rounds
    untimed)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for name, warm in interleaved(list(calls), repeats, warmup):
        t0 = time.perf_counter()
        calls[name]()
        if not warm:
            times[name].append(time.perf_counter() - t0)
    return times


def latency_summary(times: Mapping[str, Sequence[float]], reference: str, ratio_key: str) -> dict[str, Any]:
    """Per variant, the p50 in ms and its :func:`paired_ratios` to ``reference`` under ``ratio_key``."""
    return {name: {"p50_ms": round(1e3 * percentiles(t)["p50"], 2),
                   ratio_key: {m: round(r, 3) for m, r in paired_ratios(t, times[reference]).items()}}
            for name, t in times.items()}


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


def paired_bootstrap_ua(truth: Sequence[int] | np.ndarray, pred_a: Sequence[int] | np.ndarray,
                        pred_b: Sequence[int] | np.ndarray, num_classes: int,
                        rounds: int = 10000, seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """How sure a UA difference is: ``UA(a) - UA(b)`` on the same utterances, with a stratified paired
    bootstrap (each round redraws every class's utterances with replacement, so the class supports that UA
    averages over stay fixed, and scores both systems on the same draw).

    Returns ``difference`` (on the data as given), the ``level`` interval ``low``/``high`` and
    ``share_a_better`` (the rounds where a beats b). Utterances are treated as independent: with few
    speakers the interval is, if anything, too narrow, since speakers are not redrawn.
    """
    t, a, b = (np.asarray(x, dtype=np.int64) for x in (truth, pred_a, pred_b))
    if not (t.shape == a.shape == b.shape) or t.size == 0:
        raise ValueError("truth and both predictions must be equally long and non-empty")
    if rounds < 1 or not 0 < level < 1:
        raise ValueError("need rounds >= 1 and 0 < level < 1")
    classes = [np.flatnonzero(t == c) for c in range(num_classes)]
    classes = [idx for idx in classes if idx.size]
    hit_a, hit_b = (a == t).astype(np.float64), (b == t).astype(np.float64)
    rng = np.random.default_rng(seed)
    diffs = np.zeros(rounds)
    for idx in classes:  # per-class recall difference, averaged over the classes present
        draws = idx[rng.integers(0, idx.size, size=(rounds, idx.size))]
        diffs += (hit_a[draws].mean(1) - hit_b[draws].mean(1)) / len(classes)
    observed = float(np.mean([hit_a[idx].mean() - hit_b[idx].mean() for idx in classes]))
    tail = (1 - level) / 2
    return {"difference": observed, "low": float(np.quantile(diffs, tail)), "high": float(np.quantile(diffs, 1 - tail)),
            "share_a_better": float(np.mean(diffs > 0))}


def interval(d: dict[str, float] | None) -> str:
    """A :func:`paired_bootstrap_ua` result as ``+1.2 [-3.4, +5.6]`` in UA points, or ``-`` for none."""
    return f"{100 * d['difference']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]" if d else "-"
