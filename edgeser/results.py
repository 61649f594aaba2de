"""Result types: frozen dataclasses with ``to_dict()``."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from edgeser.alignment.segmenter import Segmentation


@dataclass(frozen=True)
class Timings:
    """Wall-clock seconds per stage; ``None`` for stages that did not run."""

    audio_load_s: float | None = None
    voice_activity_s: float | None = None
    speech_encoder_s: float | None = None
    segmentation_s: float | None = None
    pooling_s: float | None = None
    text_encoder_s: float | None = None
    fusion_s: float | None = None

    def to_dict(self) -> dict[str, float]:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


@dataclass(frozen=True, eq=False)
class EncoderOutput:
    """One speech-encoder pass over a batch of utterances, padded to the longest.

    Attributes:
        hidden_states: ``(batch, layers, frames, hidden)`` float32; padded frames are zero.
        log_probs: ``(batch, frames, vocab)`` CTC log-probabilities; padded frames are zero. ``None`` for an
            encoder without a CTC head (Whisper).
        frame_mask: ``(batch, frames)`` bool, true on real frames.
        num_frames: ``(batch,)`` real frames per utterance.
        num_samples: ``(batch,)`` 16 kHz samples per utterance.
        layers: Which encoder layers ``hidden_states`` holds (0 = the feature projection).
        hop_s: Seconds between frame starts.
        timings: Stage timings of this call.
    """

    hidden_states: np.ndarray
    log_probs: np.ndarray | None
    frame_mask: np.ndarray
    num_frames: np.ndarray
    num_samples: np.ndarray
    layers: tuple[int, ...]
    hop_s: float
    timings: Timings

    def __len__(self) -> int:
        return int(self.num_frames.shape[0])

    def item(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Utterance ``i`` without padding: ``(hidden_states[layers, frames, hidden], log_probs[frames, vocab])``
        (``log_probs`` is ``None`` without a CTC head)."""
        n = int(self.num_frames[i])
        return self.hidden_states[i, :, :n], None if self.log_probs is None else self.log_probs[i, :n]

    def to_dict(self) -> dict[str, Any]:
        return {"hidden_states_shape": list(self.hidden_states.shape),
                "log_probs_shape": None if self.log_probs is None else list(self.log_probs.shape),
                "num_frames": self.num_frames.tolist(), "num_samples": self.num_samples.tolist(),
                "layers": list(self.layers), "hop_s": self.hop_s, "timings": self.timings.to_dict()}


@dataclass(frozen=True, eq=False)
class TextOutput:
    """One text-encoder pass over a batch of texts, padded to the longest.

    Attributes:
        token_embeddings: ``(batch, tokens, hidden)`` float32; padded positions are zero.
        token_mask: ``(batch, tokens)`` bool, true on real tokens (special tokens included).
        tokens: The token strings of each text, without padding.
        timings: Stage timings of this call.
    """

    token_embeddings: np.ndarray
    token_mask: np.ndarray
    tokens: tuple[tuple[str, ...], ...]
    timings: Timings

    def to_dict(self) -> dict[str, Any]:
        return {"token_embeddings_shape": list(self.token_embeddings.shape),
                "tokens": [list(t) for t in self.tokens], "timings": self.timings.to_dict()}


@dataclass(frozen=True, eq=False)
class Prediction:
    """The emotion of one utterance, with the segments it was computed from.

    Attributes:
        label: The most probable class.
        probabilities: Per class, from the fused scores.
        branches: Per enabled branch (``early``, ``speech``, ``text``), its own class probabilities.
        transcript: The text used (given, or decoded from the audio); ``None`` when none was given and the
            head needed none.
        segmentation: Words, syllables and phones with times (``edgeser.alignment.segmenter.Segmentation``);
            ``None`` when the head reads only frames and no segments were asked for (``predict(..., segments=True)``).
        timings: Seconds per stage.
        speaker: How the speaker was known (``"profile (118 s)"``, ``"running estimate (34 s)"``), or ``None``:
            the speaker-independent head.
        voiced_s: Seconds of the audio that silero-vad called speech, where it ran (a head that pools voiced
            frames, or the speech check); ``None`` where it did not.
    """

    FIELDS = ("label", "probabilities", "branches", "transcript", "speaker", "voiced_s", "words", "syllables", "phones",
              "alignment_confidence", "timings")
    """Every key :meth:`to_dict` may give (``voiced_s`` and the segments' keys only where they were computed)."""

    label: str
    probabilities: dict[str, float]
    branches: dict[str, dict[str, float]]
    transcript: str | None
    segmentation: Segmentation | None
    timings: Timings
    speaker: str | None = None
    voiced_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data; ``words``, ``syllables``, ``phones`` and ``alignment_confidence`` appear
        only when segments were computed."""
        out: dict[str, Any] = {"label": self.label, "probabilities": self.probabilities, "branches": self.branches,
                               "transcript": self.transcript, "speaker": self.speaker}
        if self.voiced_s is not None:
            out["voiced_s"] = round(self.voiced_s, 3)
        if self.segmentation is not None:
            seg = self.segmentation.to_dict()
            out |= {"words": seg["words"], "syllables": seg["syllables"], "phones": seg["phones"],
                    "alignment_confidence": seg["confidence"]}
        return {**out, "timings": self.timings.to_dict()}
