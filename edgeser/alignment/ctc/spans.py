"""From a frame-level CTC path to token spans (frames), as ``torchaudio.functional.merge_tokens``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TokenSpan:
    """One target token over frames ``[start, end)``; ``score`` is its mean log-probability."""

    index: int
    start: int
    end: int
    score: float


def merge_tokens(states: np.ndarray, scores: np.ndarray) -> list[TokenSpan]:
    """Spans of consecutive frames assigned to the same target index (``-1`` = blank is skipped).

    Args:
        states: Target index per frame, from :func:`edgeser.alignment.ctc.align_states`.
        scores: Log-probability per frame of the aligned label.
    """
    states = np.asarray(states)
    change = np.flatnonzero(np.diff(states)) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [states.size]))
    return [TokenSpan(int(states[s]), int(s), int(e), float(np.mean(scores[s:e])))
            for s, e in zip(starts, ends, strict=True) if states[s] >= 0]
