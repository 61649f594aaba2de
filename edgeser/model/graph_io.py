"""What passes between the runtime and a bundle's graphs: waveforms made into a speech graph's feeds (the one
place, used by prediction, export parity checks and calibration), and each graph's tensors checked against what
``bundle.json`` declares."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeser.errors import BundleError
from edgeser.model.bundle import HeadSection, SpeechSection, TextSection

_ORT_TYPES = {"float32": "tensor(float)", "float16": "tensor(float16)", "int64": "tensor(int64)",
              "int32": "tensor(int32)", "bool": "tensor(bool)"}


def check_tensors(path: Path, section: SpeechSection | TextSection | HeadSection,
                  tensors: dict[str, tuple[str, list[Any]]], classes: int | None) -> None:
    """The graph's inputs and outputs against bundle.json's spec: types, ranks, fixed sizes (an input the graph
    takes at any size must be declared so, or no feed could pass), and the emotion head's number of classes
    against the labels. Raises :class:`BundleError` naming the tensor."""
    for t in (*section.spec.inputs, *section.spec.outputs):
        kind, shape = tensors[t.name]
        is_input = t.name in section.spec.input_names
        problem = None
        if kind != _ORT_TYPES[t.dtype]:
            problem = f"type {kind}, bundle.json declares {t.dtype}"
        elif len(shape) != len(t.dims):
            problem = f"{len(shape)} axes, bundle.json declares {len(t.dims)} ({list(t.dims)})"
        elif not all(_dims_agree(g, d, is_input) for g, d in zip(shape, t.dims, strict=True)):
            problem = f"shape {shape}, bundle.json declares {list(t.dims)}"
        if problem is not None:
            raise BundleError(f"{path}: {t.name!r} has {problem}; the graph and bundle.json disagree, re-export "
                              "the bundle")
    if classes is not None:
        for t in section.spec.outputs:
            last = tensors[t.name][1][-1]
            if isinstance(last, int) and last != classes:
                raise BundleError(f"{path}: {t.name!r} scores {last} classes but bundle.json has {classes} labels; "
                                  "the labels were edited or the head comes from another bundle, re-export it")


def _dims_agree(graph: Any, declared: Any, is_input: bool) -> bool:
    """Fixed sizes must be equal; an input axis must be fixed in both or free in both (outputs may be
    declared fixed where ONNX Runtime cannot infer the size)."""
    if isinstance(graph, int) and isinstance(declared, int):
        return graph == declared
    return not is_input or isinstance(graph, int) == isinstance(declared, int)


def speech_batch(waves: Sequence[np.ndarray], normalize: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The one place waveforms become a speech graph's input (the torch side's training feeds come from here
    too): each normalised when ``normalize`` (zero mean, unit variance over its real samples, as
    Wav2Vec2FeatureExtractor), zero-padded to the longest. Returns ``(values (batch, samples) float32, lengths
    (batch,) int64, attention mask (batch, samples) int64)``."""
    lengths = np.array([w.shape[0] for w in waves], dtype=np.int64)
    batch = np.zeros((len(waves), int(lengths.max())), dtype=np.float32)
    for i, w in enumerate(waves):
        if normalize:
            w = (w - w.mean()) / np.sqrt(w.var() + 1e-7)
        batch[i, : w.shape[0]] = w
    mask = (np.arange(batch.shape[1])[None, :] < lengths[:, None]).astype(np.int64)
    return batch, lengths, mask


def speech_feeds(waves: list[np.ndarray], section: SpeechSection) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The feeds of ``section``'s graph: :func:`speech_batch` as the bundle says (``normalize_input``, and an
    attention mask where the graph takes one)."""
    batch, lengths, mask = speech_batch(waves, section.normalize_input)
    feeds = {"input_values": batch}
    if section.uses_attention_mask:
        feeds["attention_mask"] = mask
    return feeds, lengths
