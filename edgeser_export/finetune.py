"""Fine-tune the top block the default reads, on emotion labels, with the blocks below it frozen.

The default reads Whisper base's block 3 frozen: its voiced frames' mean and standard deviation feed the head
(:mod:`edgeser_export.multicorpus`). Here block 3 itself learns. What enters it (the output of block 2 over the
utterance's speech span, from a graph exposing layers 2 and 3: ``edgeser export --speech whisper-base --layers
2,3``) is computed once through the runtime and cached (:func:`frame_features`), so training runs only the block.

Training (:func:`finetune`): the block and a linear probe on its voiced-frame statistics (z-scored with the frozen
block's statistics of the training set), weighted cross-entropy (the weights balance corpus and class) with label
smoothing, AdamW, the block at a small learning rate. The probe is then dropped: the block's statistics
(:func:`voiced_stats`) are what the default's head is trained on, as for the frozen block.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import track
from torch import nn

from edgeser import EmotionRecognizer
from edgeser.datasets import Dataset
from edgeser_export.multicorpus import cache_name, cached, waves


@dataclass(frozen=True)
class Frames:
    """The frames entering the block, utterance after utterance: ``x (total, dim)`` float16, ``voiced (total,)``
    (the frame mask prediction pools), ``offsets (n + 1,)`` (utterance ``i`` is rows ``offsets[i]:offsets[i+1]``)."""

    x: np.ndarray
    voiced: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    def item(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.x[a:b], self.voiced[a:b]

    def take(self, rows: np.ndarray) -> Frames:
        """The utterances ``rows``, in that order."""
        items = [self.item(int(i)) for i in rows]
        lengths = np.array([len(v) for _, v in items], dtype=np.int64)
        return Frames(np.concatenate([x for x, _ in items]), np.concatenate([v for _, v in items]),
                      np.concatenate([[0], np.cumsum(lengths)]))

    @staticmethod
    def join(parts: Sequence[Frames]) -> Frames:
        lengths = np.concatenate([np.diff(p.offsets) for p in parts])
        return Frames(np.concatenate([p.x for p in parts]), np.concatenate([p.voiced for p in parts]),
                      np.concatenate([[0], np.cumsum(lengths)]))


def span_frames(rec: EmotionRecognizer, wave: np.ndarray, layer: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One utterance's frames of exposed layer ``layer`` over its speech span, and its voiced-frame mask (what
    :meth:`edgeser.EmotionRecognizer.encode_speech` gives a ``frame_mask="voiced"`` head)."""
    encoded, keep = rec.encode_speech(wave)
    hidden, _ = encoded.item(0)
    return hidden[layer], keep


def frame_features(rec: EmotionRecognizer, ds: Dataset, cache: Path, copies: int = 0, seed: int = 0,
                   transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
                   tag: str = "clean") -> Frames:
    """:func:`span_frames` (layer 0 of ``rec``'s graph: the block's input) of each of
    :func:`edgeser_export.multicorpus.waves` (the same audio, copies and conditions as the statistics caches),
    cached in ``cache``."""

    def compute() -> dict[str, np.ndarray]:
        what = f"frames: {ds.name} ({tag}{f', {copies} copies' if copies else ''})"
        out = [span_frames(rec, w) for w in track(waves(ds, copies, seed, transform), total=len(ds) * max(copies, 1),
                                                  description=what)]
        lengths = np.array([len(m) for _, m in out], dtype=np.int64)
        return {"x": np.concatenate([x for x, _ in out]).astype(np.float16),
                "voiced": np.concatenate([m for _, m in out]), "offsets": np.concatenate([[0], np.cumsum(lengths)])}

    z = cached(cache / ("frames-" + cache_name(ds, tag, copies, seed, rec.speech_sha256, (0,))), compute)
    return Frames(z["x"], z["voiced"], z["offsets"])


def whisper_block(name: str = "whisper-base", index: int = 2) -> nn.Module:
    """Block ``index`` (0-based: 2 is the default's block 3) of a packaged Whisper encoder, float32."""
    from edgeser_export.whisper import load_packaged

    block: nn.Module = copy.deepcopy(load_packaged(name).encoder.layers[index])
    return block


def padded(frames: Frames, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded ``x (b, t, dim)``, the real frames ``(b, t)`` and the voiced frames ``(b, t)`` of ``rows``."""
    items = [frames.item(int(i)) for i in rows]
    longest = max(len(v) for _, v in items)
    x = np.zeros((len(items), longest, frames.x.shape[1]), dtype=np.float32)
    real = np.zeros((len(items), longest), dtype=bool)
    voiced = np.zeros((len(items), longest), dtype=bool)
    for k, (xi, vi) in enumerate(items):
        x[k, : len(vi)], real[k, : len(vi)] = xi, True
        voiced[k, : len(vi)] = vi if vi.any() else True  # no voiced frame: pool every frame
    return torch.from_numpy(x), torch.from_numpy(real), torch.from_numpy(voiced)


def _run_block(block: nn.Module, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """The block over each padded utterance ``(b, t, dim)``; attention ignores padding, as in the exported graph."""
    bias = torch.where(real, 0.0, torch.finfo(x.dtype).min)[:, None, None, :]
    out = block(x, bias)
    return torch.as_tensor(out[0] if isinstance(out, tuple) else out)


def _stats(block: nn.Module, x: torch.Tensor, real: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
    """The block over each padded utterance, then the mean and standard deviation of its voiced frames:
    ``(b, 2 * dim)``."""
    y = _run_block(block, x, real)
    w = voiced.to(y.dtype)[..., None]
    n = w.sum(1)
    mean = (y * w).sum(1) / n
    var = ((y - mean[:, None, :]) ** 2 * w).sum(1) / n
    return torch.cat([mean, torch.sqrt(var + 1e-8)], dim=1)


def by_length(frames: Frames, rows: np.ndarray, batch: int) -> list[np.ndarray]:
    """``rows`` in batches of similar length (less padding)."""
    order = rows[np.argsort(np.diff(frames.offsets)[rows], kind="stable")]
    return [order[i : i + batch] for i in range(0, order.size, batch)]


def shuffled(batches: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """``batches`` in a random order."""
    return [batches[i] for i in rng.permutation(len(batches))]


def voiced_stats(block: nn.Module, frames: Frames, batch: int = 32) -> np.ndarray:
    """Each utterance's voiced-frame mean and standard deviation after ``block``: ``(n, 2 * dim)`` float32 (the
    layout of :attr:`edgeser_export.multicorpus.Pooled.stats`)."""
    block.train(False)
    out = np.zeros((len(frames), 2 * frames.x.shape[1]), dtype=np.float32)
    with torch.no_grad():
        for rows in by_length(frames, np.arange(len(frames)), batch):
            out[rows] = _stats(block, *padded(frames, rows)).numpy()
    return out


def block_frames(block: nn.Module, frames: Frames, batch: int = 32) -> Frames:
    """``block`` over each utterance of ``frames``: its output frames (float16) and the same voiced masks."""
    block.train(False)
    out = np.zeros(frames.x.shape, dtype=np.float16)
    with torch.no_grad():
        for rows in by_length(frames, np.arange(len(frames)), batch):
            x, real, _ = padded(frames, rows)
            y = _run_block(block, x, real).numpy()
            for k, i in enumerate(rows):
                a, b = int(frames.offsets[i]), int(frames.offsets[i + 1])
                out[a:b] = y[k, : b - a]
    return Frames(out, frames.voiced, frames.offsets)


@dataclass(frozen=True)
class FinetuneConfig:
    """How the block is fine-tuned (fixed before any score was seen; not tuned)."""

    epochs: int = 2
    lr: float = 3e-5  # the block
    probe_lr: float = 1e-3  # the linear probe it trains with
    batch: int = 16
    weight_decay: float = 1e-2
    label_smoothing: float = 0.1
    clip: float = 1.0
    seed: int = 0


def finetune(block: nn.Module, frames: Frames, labels: np.ndarray, weights: np.ndarray, classes: int,
             config: FinetuneConfig = FinetuneConfig(), start: np.ndarray | None = None,
             description: str = "fine-tuning") -> nn.Module:
    """A copy of ``block`` trained with a linear probe on its voiced-frame statistics (see the module's note).
    ``start``: ``block``'s own :func:`voiced_stats` of ``frames``, when the caller has them (the probe's z-scores)."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    block = copy.deepcopy(block)
    start = voiced_stats(block, frames) if start is None else start
    mu, sd = torch.from_numpy(start.mean(0)), torch.from_numpy(start.std(0) + 1e-6)
    probe = nn.Linear(start.shape[1], classes)
    opt = torch.optim.AdamW([{"params": block.parameters(), "lr": config.lr},
                             {"params": probe.parameters(), "lr": config.probe_lr}],
                            weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss(reduction="none", label_smoothing=config.label_smoothing)
    y_all, w_all = torch.from_numpy(labels.astype(np.int64)), torch.from_numpy(weights.astype(np.float32))
    batches = [b for _ in range(config.epochs)
               for b in shuffled(by_length(frames, rng.permutation(len(frames)), config.batch), rng)]
    block.train(True)
    for rows in track(batches, description=description):
        logits = probe((_stats(block, *padded(frames, rows)) - mu) / sd)
        w = w_all[rows]
        loss = (loss_fn(logits, y_all[rows]) * w).sum() / w.sum()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_([*block.parameters(), *probe.parameters()], config.clip)
        opt.step()
    block.train(False)
    return block
