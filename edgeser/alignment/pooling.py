"""Mean pooling of frame embeddings over segments (phones, syllables, words), batched with masks.

A frame belongs to a segment when the frame's centre time lies in ``[start_s, end_s)``. A segment
shorter than a frame, or between frame centres, gets the single frame whose centre is nearest to
the segment's midpoint: every segment has an embedding, and none is ever an average of nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgeser.alignment.segmenter import Segment, Segmentation
from edgeser.errors import InputError
from edgeser.model.specs import FrameFormula


def frame_centres_s(frames: FrameFormula, num_frames: int) -> np.ndarray:
    """Centre time of each encoder frame (the middle of its receptive field)."""
    return np.asarray(frames.frame_centre_s(np.arange(num_frames)), dtype=np.float64)


def assignment(segments: Sequence[Segment], centres: np.ndarray) -> np.ndarray:
    """``(segments, frames)`` weights: 1/count on the frames of each segment, rows summing to 1."""
    weights = np.zeros((len(segments), centres.size), dtype=np.float32)
    if centres.size == 0:
        return weights
    for i, seg in enumerate(segments):
        inside = (centres >= seg.start_s) & (centres < seg.end_s)
        if inside.any():
            weights[i, inside] = 1.0 / inside.sum()
        else:
            weights[i, int(np.argmin(np.abs(centres - (seg.start_s + seg.end_s) / 2)))] = 1.0
    return weights


def pool(hidden: np.ndarray, segments: Sequence[Segment], frames: FrameFormula) -> np.ndarray:
    """Mean of ``hidden`` (``(..., frames, dim)``) over each segment: ``(..., segments, dim)``."""
    w = assignment(segments, frame_centres_s(frames, hidden.shape[-2]))
    return np.asarray(np.einsum("nt,...td->...nd", w, hidden, optimize=True), dtype=np.float32)


def pool_batch(hidden: np.ndarray, num_frames: np.ndarray, segments: Sequence[Sequence[Segment]],
               frames: FrameFormula) -> tuple[np.ndarray, np.ndarray]:
    """Pool a padded batch.

    Args:
        hidden: ``(batch, layers, frames, dim)`` encoder output (padded frames are ignored).
        num_frames: ``(batch,)`` real frames per utterance.
        segments: Per utterance, the segments of one level.

    Returns:
        ``(pooled, mask)``: ``(batch, layers, max_segments, dim)`` zero-padded, and ``(batch, max_segments)``
        true on real segments.
    """
    if len(segments) != hidden.shape[0]:
        raise InputError(f"{len(segments)} segment lists for a batch of {hidden.shape[0]}")
    longest = max((len(s) for s in segments), default=0)
    pooled = np.zeros((*hidden.shape[:2], longest, hidden.shape[-1]), dtype=np.float32)
    mask = np.zeros((hidden.shape[0], longest), dtype=bool)
    for b, segs in enumerate(segments):
        if segs:
            pooled[b, :, : len(segs)] = pool(hidden[b, :, : int(num_frames[b])], segs, frames)
            mask[b, : len(segs)] = True
    return pooled, mask


def level_features(hidden: np.ndarray, num_frames: np.ndarray, segmentations: Sequence[Segmentation],
                   frames: FrameFormula, levels: Sequence[str], voiced: np.ndarray | None = None
                   ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per level, ``(features (batch, positions, dim), mask (batch, positions))`` from one layer's frames.

    Args:
        hidden: ``(batch, frames, dim)``: one encoder layer, padded.
        num_frames: Real frames per utterance.
        segmentations: One per utterance (words, syllables, phones).
        levels: Any of ``frame``, ``phone``, ``syllable``, ``word``.
        voiced: ``(batch, frames)`` bool, the frames that hold speech (:meth:`edgeser.audio.vad.Voicing.frame_mask`):
            the frame level's mask keeps only those. Segments (phones, syllables, words) are speech already.
    """
    out = {}
    for level in levels:
        if level == "frame":
            mask = np.arange(hidden.shape[1])[None, :] < np.asarray(num_frames)[:, None]
            if voiced is not None:
                mask = mask & np.asarray(voiced, dtype=bool)[:, : hidden.shape[1]]
            out[level] = (np.ascontiguousarray(hidden, dtype=np.float32), mask)
        else:
            pooled, mask = pool_batch(hidden[:, None], num_frames, [s.level(level) for s in segmentations], frames)
            out[level] = (pooled[:, 0], mask)
    return out
