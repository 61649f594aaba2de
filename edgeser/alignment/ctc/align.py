"""CTC forced alignment: a Viterbi over the blank-extended target sequence, in numpy.

:func:`forced_align` has the semantics of ``torchaudio.functional.forced_align``: the same inputs
(log-probs, targets without blanks, blank id), the same outputs (a label per frame, blanks included,
and the log-prob of that label per frame), the same feasibility rule (repeated labels need a blank
between them) and the same tie-breaking. The recursion is vectorised over states and loops only over
time. Long inputs are aligned in windows: the forward pass keeps scores only every ``window`` frames,
and backtracking recomputes one window at a time, so memory is bounded and the path is identical.
"""

from __future__ import annotations

import numpy as np

from edgeser.errors import AlignmentError, InputError

NEG_INF = -np.inf
DEFAULT_WINDOW = 2048
"""Frames per backtracking window (41 s of wav2vec2 frames)."""
_FULL_MEMORY_LIMIT = 64 * 1024 * 1024
"""Back-pointer bytes (frames x states) above which the windowed pass is used."""


def _check(log_probs: np.ndarray, targets: np.ndarray, blank: int) -> None:
    if log_probs.ndim != 2:
        raise InputError(f"log_probs must be (frames, classes), got shape {log_probs.shape}")
    if targets.ndim != 1:
        raise InputError(f"targets must be 1-D, got shape {targets.shape}")
    if targets.size == 0:
        raise AlignmentError("the transcript gives no tokens to align; pass a transcript with words in the "
                             "model's vocabulary")
    classes = log_probs.shape[1]
    if not 0 <= blank < classes:
        raise InputError(f"blank id {blank} is outside the {classes} classes")
    if (targets == blank).any():
        raise InputError(f"targets must not contain the blank id {blank}")
    if targets.min() < 0 or targets.max() >= classes:
        raise InputError(f"target ids must be in 0..{classes - 1}")
    repeats = int((targets[1:] == targets[:-1]).sum())
    frames, needed = log_probs.shape[0], targets.size + repeats
    if frames < needed:
        raise AlignmentError(
            f"the transcript needs at least {needed} frames ({targets.size} tokens, {repeats} repeated pairs "
            f"that need a blank between them), but the audio gives {frames}; pass a shorter transcript or "
            "longer audio")


def _step(alpha: np.ndarray, emit: np.ndarray, skip_ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One time step: best predecessor (stay, from s-1, from s-2) per state, with torchaudio's tie order."""
    x1 = np.concatenate(([NEG_INF], alpha[:-1]))
    x2 = np.where(skip_ok, np.concatenate(([NEG_INF, NEG_INF], alpha[:-2])), NEG_INF)
    # torchaudio's CPU kernel: s-2 if strictly best, else s-1 if strictly best, else stay (also on x1 == x2 > x0)
    take2 = (x2 > x1) & (x2 > alpha)
    take1 = ~take2 & (x1 > alpha) & (x1 > x2)
    best = np.where(take2, x2, np.where(take1, x1, alpha))
    ptr = (2 * take2 + take1).astype(np.int8)
    return best + emit, ptr


def align_states(log_probs: np.ndarray, targets: np.ndarray, blank: int = 0,
                 window: int = DEFAULT_WINDOW) -> np.ndarray:
    """The Viterbi path as a target index per frame (``-1`` on blank frames).

    Args:
        log_probs: ``(frames, classes)`` log-probabilities (log-softmax output).
        targets: ``(tokens,)`` label ids, no blanks.
        blank: The blank id.
        window: Frames per window when the full back-pointer table would exceed 64 MiB.

    Raises:
        AlignmentError: No tokens, or fewer frames than the targets need.
    """
    log_probs = np.asarray(log_probs, dtype=np.float32)
    targets = np.asarray(targets, dtype=np.int64)
    _check(log_probs, targets, blank)
    frames, num_states = log_probs.shape[0], 2 * targets.size + 1
    labels = np.full(num_states, blank, dtype=np.int64)
    labels[1::2] = targets
    skip_ok = np.zeros(num_states, dtype=bool)  # s-2 -> s allowed: s is a label differing from the one before
    skip_ok[3::2] = targets[1:] != targets[:-1]
    emissions = log_probs[:, labels]  # (frames, states); small next to the back-pointers

    init = np.full(num_states, NEG_INF)
    init[0], init[1] = emissions[0, 0], emissions[0, 1]
    use_windows = frames * num_states > _FULL_MEMORY_LIMIT and window < frames
    step = window if use_windows else frames
    checkpoints = {0: init}  # alpha after frame start - 1, for each window start > 0
    pointers = np.zeros((0 if use_windows else frames, num_states), dtype=np.int8)
    alpha = init
    for t in range(1, frames):
        alpha, ptr = _step(alpha, emissions[t], skip_ok)
        if not use_windows:
            pointers[t] = ptr
        elif (t + 1) % step == 0:
            checkpoints[t] = alpha
    state = num_states - 1 if alpha[-1] > alpha[-2] else num_states - 2
    path = np.empty(frames, dtype=np.int64)
    if not use_windows:
        _backtrack(pointers, state, 0, frames, path)
    else:
        for start in range(((frames - 1) // step) * step, -1, -step):
            end = min(start + step, frames)
            a = init if start == 0 else checkpoints[start - 1]
            window_ptrs = np.zeros((end - start, num_states), dtype=np.int8)
            for t in range(max(start, 1), end):
                a, window_ptrs[t - start] = _step(a, emissions[t], skip_ok)
            state = _backtrack(window_ptrs, state, start, end, path)
    return np.where(path % 2 == 1, (path - 1) // 2, -1)


def _backtrack(pointers: np.ndarray, state: int, start: int, end: int, path: np.ndarray) -> int:
    """Fill ``path[start:end]`` from ``state`` at ``end - 1``; return the state at ``start - 1``."""
    for t in range(end - 1, start - 1, -1):
        path[t] = state
        if t > 0:
            state -= int(pointers[t - start, state])
    return state


def forced_align(log_probs: np.ndarray, targets: np.ndarray, blank: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Align ``targets`` to ``log_probs`` like ``torchaudio.functional.forced_align`` (batch of one, unbatched).

    Args:
        log_probs: ``(frames, classes)`` log-probabilities.
        targets: ``(tokens,)`` label ids without blanks.
        blank: The blank id.

    Returns:
        ``(labels, scores)``: the label id of each frame (blank included) and its log-probability.

    Raises:
        AlignmentError: No tokens, or fewer frames than the targets need (the message has the numbers).
    """
    log_probs = np.asarray(log_probs, dtype=np.float32)
    targets = np.asarray(targets, dtype=np.int64)
    states = align_states(log_probs, targets, blank)
    labels = np.where(states >= 0, targets[np.maximum(states, 0)], blank)
    return labels, log_probs[np.arange(labels.size), labels]
