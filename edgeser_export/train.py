"""Training the fusion heads on cached features (frozen encoders): CPU-friendly, seeded, class-balanced.

Features are per-utterance arrays (``{"word": (words, dim), ..., "text": (tokens, dim)}``) computed once
by the runtime (one encoder pass, segmentation, pooling) and kept on disk, so heads train in minutes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from edgeser.errors import InputError
from edgeser.metrics import confusion_matrix, unweighted_accuracy
from edgeser_export.model import FusionConfig, FusionEnsemble, FusionModel

log = logging.getLogger(__name__)

Features = dict[str, np.ndarray]
"""One utterance: per input name (``frame``, ``phone``, ``syllable``, ``word``, ``text``) a (length, dim) array."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; the defaults suit frozen-encoder features on a CPU.

    ``seeds`` > 1 trains that many heads (seeds ``seed``, ``seed + 1``, ...) and averages them
    (:func:`fit`, :class:`~edgeser_export.model.FusionEnsemble`). ``label_smoothing`` ε trains towards
    ``1 - ε`` on the label and ``ε`` spread over every class (Szegedy et al. 2016), which keeps a head from
    driving its probabilities to 0 and 1 on the training set.
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    seed: int = 0
    class_balanced: bool = True
    seeds: int = 1
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.seeds < 1 or self.epochs < 1 or self.batch_size < 1:
            raise InputError(f"seeds, epochs and batch_size must be >= 1, got {self.seeds}, {self.epochs}, "
                             f"{self.batch_size}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise InputError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


def collate(items: Sequence[Features], names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Pad each named input to the batch's longest and add its ``<name>_mask``."""
    out: dict[str, torch.Tensor] = {}
    for name in names:
        arrays = [it[name] for it in items]
        longest = max(a.shape[0] for a in arrays)
        padded = np.zeros((len(arrays), longest, arrays[0].shape[1]), dtype=np.float32)
        mask = np.zeros((len(arrays), longest), dtype=bool)
        for i, a in enumerate(arrays):
            padded[i, : a.shape[0]] = a
            mask[i, : a.shape[0]] = True
        out[name], out[f"{name}_mask"] = torch.from_numpy(padded), torch.from_numpy(mask)
    return out


def _names(config: FusionConfig) -> list[str]:
    return [*config.levels, *(["text"] if config.use_text else [])]


def predict(model: FusionModel | FusionEnsemble, items: Sequence[Features], batch_size: int = 256) -> np.ndarray:
    """Final log-probabilities ``(utterances, classes)``."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(items), batch_size):
            out.append(model(**collate(items[i : i + batch_size], _names(model.config)))["scores"].numpy())
    return np.concatenate(out)


def train(config: FusionConfig, items: Sequence[Features], labels: np.ndarray, train_config: TrainConfig,
          valid: tuple[Sequence[Features], np.ndarray] | None = None,
          progress: Callable[[int, float, float | None], None] | None = None,
          weights: np.ndarray | None = None) -> tuple[FusionModel, dict[str, float]]:
    """Train a :class:`FusionModel` with AdamW and (optionally) class-balanced cross-entropy (after fixing
    statistics pooling's z-scores from ``items``, when the config pools so).

    With ``valid``, the weights of the epoch with the best validation UA are kept. ``weights``: one per item, the
    loss's weight for it (balancing corpora and classes at once, say); they replace ``class_balanced``.

    Returns:
        The model (eval mode) and ``{"epoch", "valid_ua"}`` of the kept weights.
    """
    torch.manual_seed(train_config.seed)
    rng = np.random.default_rng(train_config.seed)
    model = FusionModel(config)
    if model.needs_statistics:
        model.fit_statistics(collate(items[i : i + 256], _names(config)) for i in range(0, len(items), 256))
    opt = torch.optim.AdamW(model.parameters(), lr=train_config.lr, weight_decay=train_config.weight_decay)
    counts = np.bincount(labels, minlength=config.num_classes).astype(np.float32)
    weight = torch.from_numpy(counts.sum() / (config.num_classes * np.maximum(counts, 1))) \
        if train_config.class_balanced and weights is None else None
    item_weight = None if weights is None else torch.from_numpy(np.asarray(weights, dtype=np.float32))
    if item_weight is not None and item_weight.shape != (len(items),):
        raise InputError(f"{item_weight.shape[0]} weights for {len(items)} items")
    names = _names(config)
    best: dict[str, float] = {"epoch": -1, "valid_ua": -1.0}
    best_state = None
    for epoch in range(train_config.epochs):
        model.train()
        order = rng.permutation(len(items))
        total = 0.0
        for i in range(0, len(order), train_config.batch_size):
            idx = order[i : i + train_config.batch_size]
            scores = model(**collate([items[j] for j in idx], names))["scores"]
            target = torch.from_numpy(labels[idx])
            per_item = torch.nn.functional.nll_loss(scores, target, reduction="none")
            if train_config.label_smoothing:
                eps = train_config.label_smoothing
                per_item = (1 - eps) * per_item - eps * scores.mean(-1)
            w = item_weight[idx] if item_weight is not None else weight[target] if weight is not None else None
            loss = per_item.mean() if w is None else (per_item * w).sum() / w.sum()
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            total += float(loss.detach()) * len(idx)
        valid_ua = None
        if valid is not None:
            pred = predict(model, valid[0]).argmax(1)
            valid_ua = unweighted_accuracy(confusion_matrix(valid[1], pred, config.num_classes))
            if valid_ua > best["valid_ua"]:
                best = {"epoch": epoch, "valid_ua": valid_ua}
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if progress is not None:
            progress(epoch, total / len(items), valid_ua)
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval(), best


def train_ensemble(config: FusionConfig, items: Sequence[Features], labels: np.ndarray, train_config: TrainConfig,
                   valid: tuple[Sequence[Features], np.ndarray] | None = None,
                   weights: np.ndarray | None = None) -> FusionEnsemble:
    """``train_config.seeds`` models trained as :func:`train` does (each keeping its best epoch on ``valid``,
    when given) with seeds ``train_config.seed + 0, 1, ...``, averaged (:class:`FusionEnsemble`)."""
    members = [train(config, items, labels, replace(train_config, seed=train_config.seed + k), valid=valid,
                     weights=weights)[0]
               for k in range(train_config.seeds)]
    ensemble = FusionEnsemble(members)
    ensemble.eval()
    return ensemble


def fit(config: FusionConfig, items: Sequence[Features], labels: np.ndarray, train_config: TrainConfig
        ) -> FusionModel | FusionEnsemble:
    """One head (:func:`train`) or, with ``train_config.seeds`` > 1, their average (:func:`train_ensemble`)."""
    if train_config.seeds == 1:
        return train(config, items, labels, train_config)[0]
    return train_ensemble(config, items, labels, train_config)
