"""Per-utterance features for training the heads, computed by the runtime and cached on disk.

One encoder pass per utterance gives the frame embeddings and (through its CTC head) the segments
they are pooled over; the text encoder gives the token embeddings. Utterances that fail (unreadable
audio, a transcript that cannot be aligned) are listed with the reason, never dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import track

from edgeser import EmotionRecognizer
from edgeser.alignment.pooling import level_features
from edgeser.datasets import Dataset, Utterance
from edgeser.errors import EdgeserError, InputError
from edgeser.options import RuntimeOptions, SegmentOptions
from edgeser_export.train import Features


@dataclass(frozen=True)
class FeatureSet:
    """Features of the utterances that could be computed, their dataset indices, and the failures."""

    items: list[Features]
    indices: np.ndarray
    failures: list[tuple[str, str]]


def utterance_features(rec: EmotionRecognizer, utt: Utterance, levels: Sequence[str], use_text: bool,
                       layer: int = -1, segmenter: str = "bundle", frame_mask: str = "all",
                       wave: np.ndarray | None = None) -> Features:
    """``{level: (positions, dim)}`` for the speech levels and ``{"text": (tokens, dim)}``, unpadded.

    ``frame_mask="voiced"`` reads, at the frame level, what prediction reads for such a head: the speech span's
    voiced frames (:meth:`edgeser.EmotionRecognizer.encode_speech`). ``wave``: the utterance's audio when it is not
    ``utt.path``'s as read (an augmented copy, 16 kHz mono float32)."""
    feats: Features = {}
    if levels:
        if wave is None:
            if utt.path is None:
                raise InputError(f"{utt.id}: speech levels {list(levels)} need audio, this utterance has none")
            wave = rec.load_audio(utt.path)
        voiced = None
        if frame_mask == "voiced":  # what prediction reads: the speech span, its voiced frames
            if set(levels) != {"frame"}:
                raise InputError(f"voiced-frame pooling reads frames only, not {list(levels)}")
            encoded, keep = rec.encode_speech(wave)
            voiced = keep[None]
        else:
            encoded = rec.encode(wave, sample_rate=16000)
        segs = ([rec._segment_for_fusion(encoded, wave, utt.transcript, segmenter=segmenter)]
                if set(levels) - {"frame"} else [])
        for level, (x, mask) in level_features(encoded.hidden_states[:, layer], encoded.num_frames, segs,
                                               rec.speech.frames, levels, voiced=voiced).items():
            feats[level] = x[0][mask[0]]
    if use_text:
        if not utt.transcript:
            raise InputError(f"{utt.id}: the text branch needs a transcript")
        text = rec.embed_text(utt.transcript)
        feats["text"] = text.token_embeddings[0][text.token_mask[0]]
    return feats


def cache_key(rec: EmotionRecognizer, levels: Sequence[str], use_text: bool, layer: int,
              segmenter: str = "bundle", frame_mask: str = "all") -> str:
    """Changes whenever the graphs, the levels, the layer, the segmenter or the boundary rule the segments are
    cut with (the bundle's recorded one, else the library's current defaults) change."""
    files = rec.bundle.manifest.files
    fusion = rec.bundle.manifest.fusion
    rule = fusion.boundaries if fusion is not None and fusion.boundaries is not None else \
        SegmentOptions().boundary_rule()
    ident = {"graphs": {k: v.sha256 for k, v in sorted(files.items())}, "levels": list(levels), "text": use_text,
             "layer": layer, **({"segmenter": segmenter} if segmenter != "bundle" else {}),
             **({"boundaries": rule} if set(levels) - {"frame"} else {}),
             **({"frame_mask": frame_mask} if frame_mask != "all" else {})}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def compute(rec: EmotionRecognizer, dataset: Dataset, levels: Sequence[str], use_text: bool, cache: Path,
            layer: int = -1, segmenter: str = "bundle", *, frame_mask: str = "all", ray_address: str | None = None,
            workers: int | None = None) -> FeatureSet:
    """Features of every utterance, read from ``cache`` when present, else computed and written there: in this
    process, or on Ray when ``ray_address`` (``"local"``, ``"auto"``, a cluster) or ``workers`` is given (a pool
    of :class:`FeatureWorker` actors, each loading the bundle once, through :func:`edgeser.batch.ray_map`; the
    same features, the same cache)."""
    folder = cache / f"{dataset.name}-{cache_key(rec, levels, use_text, layer, segmenter, frame_mask)}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{hashlib.sha1(u.id.encode()).hexdigest()[:20]}.npz" for u in dataset.utterances]
    todo = [i for i, path in enumerate(paths) if not path.is_file()]
    settings = (levels, use_text, layer, segmenter, frame_mask)
    on_ray = ray_address is not None or workers is not None  # there the actors write the cache files
    computed = (_on_ray(rec, dataset, todo, paths, settings, ray_address, workers) if on_ray
                else ((i, _write_features(rec, dataset.utterances[i], settings, paths[i])) for i in todo))
    failed: dict[int, str] = {}
    for i, error in track(computed, total=len(todo), description=f"features ({dataset.name})"):
        if error is not None:
            failed[i] = error
    items, indices = [], []
    for i, path in enumerate(paths):
        if i not in failed:
            with np.load(path) as z:
                items.append({k: z[k] for k in z.files})
            indices.append(i)
    failures = [(dataset.utterances[i].id, failed[i]) for i in sorted(failed)]
    return FeatureSet(items, np.array(indices, dtype=np.int64), failures)


Settings = tuple[Sequence[str], bool, int, str, str]
"""levels, use_text, layer, segmenter, frame_mask: what :func:`utterance_features` is asked for."""


def _write_features(rec: EmotionRecognizer, utt: Utterance, settings: Settings, path: Path) -> str | None:
    """Compute an utterance's features into ``path`` (written to a temporary name, then renamed); returns the
    reason when it has none (unreadable audio, a transcript that cannot be aligned)."""
    try:
        feats = utterance_features(rec, utt, *settings)
    except (EdgeserError, ValueError) as e:
        return str(e)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **feats)  # type: ignore[arg-type]
    tmp.replace(path)
    return None


UTTERANCE_COLUMNS = ("id", "path", "speaker", "group", "label", "transcript")


class FeatureWorker:
    """One Ray actor of :func:`compute`: the bundle loaded once (with the driver's runtime options), then
    utterances in (as Ray Data columns), their features written to the cache file each row names, and the reason
    for none out. On a cluster the cache folder must be storage every node shares, as the audio is."""

    def __init__(self, bundle: str, options: RuntimeOptions, settings: Settings) -> None:
        self.rec = EmotionRecognizer.from_bundle(bundle, options)
        self.settings = settings

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"index": [], "error": []}
        for k, index in enumerate(batch["index"]):
            given = {c: batch[c][k] for c in UTTERANCE_COLUMNS}
            utt = Utterance(id=str(given["id"]), path=Path(given["path"]) if given["path"] else None,
                            speaker=str(given["speaker"]), group=str(given["group"]), label=str(given["label"]),
                            transcript=str(given["transcript"]) if given["transcript"] else None)
            out["index"].append(int(index))
            out["error"].append(_write_features(self.rec, utt, self.settings, Path(batch["cache"][k])) or "")
        return out


def _on_ray(rec: EmotionRecognizer, dataset: Dataset, todo: list[int], paths: list[Path], settings: Settings,
            address: str | None, workers: int | None) -> Iterator[tuple[int, str | None]]:
    from edgeser.batch import ray_map

    rows = [{"index": i, "cache": str(paths[i].resolve()),
             **{c: "" if (v := getattr(dataset.utterances[i], c)) is None else str(v) for c in UTTERANCE_COLUMNS}}
            for i in todo]
    for row in ray_map(rows, FeatureWorker, (str(rec.bundle.path), rec.options, tuple(settings)), address=address,
                       workers=workers, threads=max(1, rec.options.threads), what="computing features on Ray"):
        yield int(row["index"]), (str(row["error"]) or None)
