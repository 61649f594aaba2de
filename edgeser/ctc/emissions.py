"""CTC emissions: per-frame log-probabilities with their vocabulary and time grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeser.bundle import CtcVocab


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
            raise ValueError(f"log_probs must be (frames, {len(self.vocab.tokens)}), got {self.log_probs.shape}")

    @property
    def num_frames(self) -> int:
        return int(self.log_probs.shape[0])

    def time(self, frame: int | float) -> float:
        """Seconds at the start of ``frame`` (``num_frames`` gives the end of the last frame)."""
        return self.offset_s + float(frame) * self.hop_s
