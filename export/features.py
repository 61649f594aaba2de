"""Per-utterance features for training the heads, computed by the runtime and cached on disk.

One encoder pass per utterance gives the frame embeddings and (through its CTC head) the segments
they are pooled over; the text encoder gives the token embeddings. Utterances that fail (unreadable
audio, a transcript that cannot be aligned) are listed with the reason, never dropped silently.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import track

from edgeser import EmotionRecognizer
from edgeser.datasets import Dataset, Utterance
from edgeser.errors import EdgeserError, InputError
from edgeser.export.train import Features
from edgeser.options import SegmentOptions
from edgeser.pooling import level_features


@dataclass(frozen=True)
class FeatureSet:
    """Features of the utterances that could be computed, their dataset indices, and the failures."""

    items: list[Features]
    indices: np.ndarray
    failures: list[tuple[str, str]]


def utterance_features(rec: EmotionRecognizer, utt: Utterance, levels: Sequence[str], use_text: bool,
                       layer: int = -1, segmenter: str = "bundle") -> Features:
    """``{level: (positions, dim)}`` for the speech levels and ``{"text": (tokens, dim)}``, unpadded."""
    feats: Features = {}
    if levels:
        if utt.path is None:
            raise InputError(f"{utt.id}: speech levels {list(levels)} need audio, this utterance has none")
        wave = rec.load_audio(utt.path)
        encoded = rec.encode(wave, sample_rate=16000)
        segs = ([rec.segment_for_fusion(encoded, wave, utt.transcript, segmenter=segmenter)]
                if set(levels) - {"frame"} else [])
        for level, (x, mask) in level_features(encoded.hidden_states[:, layer], encoded.num_frames, segs,
                                               rec.speech.frames, levels).items():
            feats[level] = x[0][mask[0]]
    if use_text:
        if not utt.transcript:
            raise InputError(f"{utt.id}: the text branch needs a transcript")
        text = rec.embed_text(utt.transcript)
        feats["text"] = text.token_embeddings[0][text.token_mask[0]]
    return feats


def cache_key(rec: EmotionRecognizer, levels: Sequence[str], use_text: bool, layer: int,
              segmenter: str = "bundle") -> str:
    """Changes whenever the graphs, the levels, the layer, the segmenter or the boundary rule the segments are
    cut with (the bundle's recorded one, else the library's current defaults) change."""
    files = rec.bundle.manifest.files
    fusion = rec.bundle.manifest.fusion
    rule = fusion.boundaries if fusion is not None and fusion.boundaries is not None else \
        SegmentOptions().boundary_rule()
    ident = {"graphs": {k: v.sha256 for k, v in sorted(files.items())}, "levels": list(levels), "text": use_text,
             "layer": layer, **({"segmenter": segmenter} if segmenter != "bundle" else {}),
             **({"boundaries": rule} if set(levels) - {"frame"} else {})}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def compute(rec: EmotionRecognizer, dataset: Dataset, levels: Sequence[str], use_text: bool, cache: Path,
            layer: int = -1, segmenter: str = "bundle") -> FeatureSet:
    """Features of every utterance, read from ``cache`` when present, else computed and written there."""
    folder = cache / f"{dataset.name}-{cache_key(rec, levels, use_text, layer, segmenter)}"
    folder.mkdir(parents=True, exist_ok=True)
    items, indices, failures = [], [], []
    for i, utt in enumerate(track(dataset.utterances, description=f"features ({dataset.name})")):
        path = folder / f"{hashlib.sha1(utt.id.encode()).hexdigest()[:20]}.npz"
        if path.is_file():
            with np.load(path) as z:
                feats = {k: z[k] for k in z.files}
        else:
            try:
                feats = utterance_features(rec, utt, levels, use_text, layer, segmenter)
            except (EdgeserError, ValueError) as e:
                failures.append((utt.id, str(e)))
                continue
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, **feats)  # type: ignore[arg-type]
            tmp.replace(path)
        items.append(feats)
        indices.append(i)
    return FeatureSet(items, np.array(indices, dtype=np.int64), failures)
