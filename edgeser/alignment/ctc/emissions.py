"""CTC emissions: per-frame log-probabilities with their vocabulary and time grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeser.errors import InputError
from edgeser.model.bundle import CtcVocab


@dataclass(frozen=True, eq=False)
class Emissions:
    """Log-probabilities of one utterance, ``(frames, vocab)``, and how frames map to seconds.

    Frame ``i`` covers ``[offset_s + i * hop_s, offset_s + (i + 1) * hop_s)``.
    """

    log_probs: np.ndarray
    vocab: CtcVocab
    hop_s: float
    offset_s: float = 0.0

    def __post_init__(self) -> None:
        if self.log_probs.ndim != 2 or self.log_probs.shape[1] != len(self.vocab.tokens):
            raise InputError(f"log_probs must be (frames, {len(self.vocab.tokens)}), got {self.log_probs.shape}")

    @property
    def num_frames(self) -> int:
        return int(self.log_probs.shape[0])

    def pause_marked(self, min_pause_s: float = 0.3, blank_prob: float = 0.99) -> Emissions:
        """A copy in which the middle frame of every run of at least ``min_pause_s`` of near-certain blanks is
        the word delimiter, for decoding: a CTC recognizer need not emit a delimiter across a long silence, and
        a decoder then joins the words on either side into one. Unchanged without a delimiter."""
        if self.vocab.word_delimiter is None:
            return self
        blank = self.log_probs[:, self.vocab.blank_id] >= np.log(blank_prob)
        run = max(1, round(min_pause_s / self.hop_s))
        out = self.log_probs.copy()
        mark = np.full(out.shape[1], np.log(1e-6), np.float32)
        mark[self.vocab.tokens.index(self.vocab.word_delimiter)] = 0.0
        edges = np.flatnonzero(np.diff(np.concatenate([[0], blank.astype(np.int8), [0]])))
        for start, end in zip(edges[::2], edges[1::2], strict=True):
            if end - start >= run:
                out[(start + end) // 2] = mark
        return Emissions(out, self.vocab, self.hop_s, self.offset_s)

    def time(self, frame: int | float) -> float:
        """Seconds at the start of ``frame`` (``num_frames`` gives the end of the last frame)."""
        return self.offset_s + float(frame) * self.hop_s
