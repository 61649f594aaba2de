"""An attentive statistics pooling head: the default's head, with its plain mean and standard deviation over voiced
frames replaced by a weighted mean and standard deviation whose weights a small network learns (Okabe, Koshinaka &
Shinoda, "Attentive Statistics Pooling for Deep Speaker Embedding", Interspeech 2018; the pooling of ECAPA-TDNN).

Each frame is z-scored (the training frames' statistics) and scored by ``v . tanh(W x + b)`` (a bottleneck of 64);
the scores' softmax over the utterance's voiced frames weighs the mean and standard deviation, which go through the
default's classifier (dropout, a hidden layer of ``dim``, dropout, the classes). Trained as the default's head is
(:data:`HEAD`'s epochs, learning rate, label smoothing and seeds, averaged; weights balancing corpus and class), on
frames (:class:`edgeser_export.finetune.Frames`) rather than on two frames standing for their statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from rich.progress import track
from torch import nn

from edgeser_export.finetune import Frames, by_length, padded, shuffled
from edgeser_export.multicorpus import HEAD, HeadSpec


class AttentiveHead(nn.Module):
    """Frames ``(b, t, dim)`` with their voiced mask ``(b, t)`` -> class scores ``(b, classes)``."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, classes: int, spec: HeadSpec = HEAD,
                 attention: int = 64, normalise: bool = True) -> None:
        super().__init__()
        dim = mean.size
        self.mu: torch.Tensor
        self.sd: torch.Tensor
        self.register_buffer("mu", torch.from_numpy(mean.astype(np.float32)))
        self.register_buffer("sd", torch.from_numpy(std.astype(np.float32) + 1e-6))
        self.classes = classes
        self.score = nn.Sequential(nn.Linear(dim, attention), nn.Tanh(), nn.Linear(attention, 1))
        # The pooled statistics batch-normalised (as ECAPA-TDNN does after its pooling): the means of z-scored frames
        # vary little from one utterance to the next, and the default's head z-scores its statistics for that reason.
        self.norm = nn.BatchNorm1d(2 * dim) if normalise else nn.Identity()
        self.classify = nn.Sequential(nn.Dropout(spec.dropout), nn.Linear(2 * dim, spec.dim), nn.ReLU(),
                                      nn.Dropout(spec.dropout), nn.Linear(spec.dim, classes))

    def pool(self, x: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
        """The attention-weighted mean and standard deviation of the z-scored voiced frames: ``(b, 2 * dim)``."""
        z = (x - self.mu) / self.sd
        e = self.score(z).squeeze(-1).masked_fill(~voiced, torch.finfo(z.dtype).min)
        a = torch.softmax(e, dim=1)[..., None]
        mean = (a * z).sum(1)
        var = (a * z * z).sum(1) - mean * mean
        return torch.cat([mean, torch.sqrt(var.clamp(min=1e-6))], dim=1)

    def forward(self, x: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.classify(self.norm(self.pool(x, voiced))))


def voiced_moments(frames: Frames) -> tuple[np.ndarray, np.ndarray]:
    """The mean and standard deviation of every voiced frame of ``frames`` (float64, one pass)."""
    total = np.zeros(frames.x.shape[1])
    square = np.zeros(frames.x.shape[1])
    n = 0
    for a in range(0, frames.x.shape[0], 200_000):
        x = frames.x[a : a + 200_000][frames.voiced[a : a + 200_000]].astype(np.float64)
        total += x.sum(0)
        square += (x * x).sum(0)
        n += x.shape[0]
    mean = total / max(n, 1)
    return mean, np.sqrt(np.maximum(square / max(n, 1) - mean * mean, 0.0))


def fit_attentive(frames: Frames, labels: np.ndarray, weights: np.ndarray, classes: int, spec: HeadSpec = HEAD,
                  normalise: bool = True, description: str = "attentive head") -> list[AttentiveHead]:
    """``spec.train.seeds`` heads (seeds ``spec.train.seed + k``), each trained as the module's note says."""
    mean, std = voiced_moments(frames)
    y_all, w_all = torch.from_numpy(labels.astype(np.int64)), torch.from_numpy(weights.astype(np.float32))
    loss_fn = nn.CrossEntropyLoss(reduction="none", label_smoothing=spec.train.label_smoothing)
    heads = []
    t = spec.train
    for k in range(t.seeds):
        torch.manual_seed(t.seed + k)
        rng = np.random.default_rng(t.seed + k)
        head = AttentiveHead(mean, std, classes, spec, normalise=normalise)
        opt = torch.optim.AdamW(head.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        head.train(True)
        batches = [b for _ in range(t.epochs) for b in shuffled(by_length(frames, rng.permutation(len(frames)),
                                                                          t.batch_size), rng)]
        for rows in track(batches, description=f"{description} (seed {k + 1} of {t.seeds})"):
            if rows.size < 2:  # batch normalisation needs two utterances
                continue
            x, _, voiced = padded(frames, rows)
            w = w_all[rows]
            loss = (loss_fn(head(x, voiced), y_all[rows]) * w).sum() / w.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        head.train(False)
        heads.append(head)
    return heads


def attentive_log_probs(heads: Sequence[AttentiveHead], frames: Frames, batch: int = 64) -> np.ndarray:
    """The heads' averaged probabilities, as log-probabilities ``(n, classes)`` (as an ensemble of the default's
    heads averages)."""
    out = None
    with torch.no_grad():
        for head in heads:
            p = np.zeros((len(frames), head.classes), dtype=np.float64)
            for rows in by_length(frames, np.arange(len(frames)), batch):
                x, _, voiced = padded(frames, rows)
                p[rows] = torch.softmax(head(x, voiced), dim=1).numpy()
            out = p if out is None else out + p
    assert out is not None
    return np.asarray(np.log(np.maximum(out / len(heads), 1e-12)))
