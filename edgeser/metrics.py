"""Classification metrics of the seed paper: UA (mean per-class recall) and WA (accuracy), per fold."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeser.errors import EdgeserError, InputError

if TYPE_CHECKING:
    from edgeser.datasets import Utterance
    from edgeser.recognizer import EmotionRecognizer


def evaluate(rec: EmotionRecognizer, utterances: Iterable[Utterance], *, keep_predictions: bool = False
             ) -> dict[str, Any]:
    """UA, WA and the confusion matrix of ``rec.predict`` over labelled utterances (transcripts used where
    present); utterances it refuses (``EdgeserError``: silent, unalignable...) are counted, not scored.

    With ``keep_predictions``, also ``truth`` and ``predictions``: label ids per utterance, in order, ``-1``
    for a refused one (to compare two models on the same utterances, e.g. with a paired bootstrap).
    """
    truth: list[str] = []
    predicted: list[str | None] = []
    for u in utterances:
        if u.path is None:
            raise InputError(f"{u.id}: no audio to predict from")
        truth.append(u.label)
        try:
            predicted.append(rec.predict(u.path, u.transcript, check_speech=False).label)  # score every utterance
        except EdgeserError:
            predicted.append(None)
    return scores(truth, predicted, rec.bundle.manifest.labels, keep_predictions=keep_predictions)


def scores(truth: Sequence[str], predicted: Sequence[str | None], labels: Sequence[str], *,
           keep_predictions: bool = False) -> dict[str, Any]:
    """What :func:`evaluate` returns, from true and predicted label names (``None``: refused, counted as
    ``failed``, not scored); also what ``edgeser batch`` scores its records with (:func:`edgeser.batch.evaluate`)."""
    labels = list(labels)
    every_truth = [labels.index(t) for t in truth]
    every_pred = [-1 if p is None else labels.index(p) for p in predicted]
    kept = [(t, p) for t, p in zip(every_truth, every_pred, strict=True) if p >= 0]
    cm = confusion_matrix([t for t, _ in kept], [p for _, p in kept], len(labels))
    out = {"ua": unweighted_accuracy(cm), "wa": weighted_accuracy(cm), "utterances": len(kept),
           "failed": len(every_truth) - len(kept), "confusion": cm.tolist()}
    if keep_predictions:
        out.update(truth=every_truth, predictions=every_pred)
    return out


def confusion_matrix(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                     num_classes: int) -> np.ndarray:
    """``(num_classes, num_classes)`` counts; rows are true classes, columns predictions."""
    t, p = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise InputError(f"y_true and y_pred differ in shape: {t.shape} vs {p.shape}")
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= num_classes):
        raise InputError(f"class ids must be in 0..{num_classes - 1}")
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (t, p), 1)
    return m


def unweighted_accuracy(cm: np.ndarray) -> float:
    """Mean recall over the classes that occur (UA); classes absent from the truth are not averaged in."""
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        raise InputError("no examples")
    return float(np.mean(np.diag(cm)[present] / support[present]))


def weighted_accuracy(cm: np.ndarray) -> float:
    """Share of correct predictions (WA, i.e. accuracy)."""
    total = cm.sum()
    if total == 0:
        raise InputError("no examples")
    return float(np.trace(cm) / total)


@dataclass(frozen=True)
class FoldScores:
    """UA/WA per fold, their mean and standard deviation, and the summed confusion matrix."""

    ua: tuple[float, ...]
    wa: tuple[float, ...]
    confusion: np.ndarray

    @classmethod
    def from_folds(cls, matrices: Sequence[np.ndarray]) -> FoldScores:
        return cls(ua=tuple(unweighted_accuracy(m) for m in matrices),
                   wa=tuple(weighted_accuracy(m) for m in matrices), confusion=np.sum(matrices, axis=0))

    @property
    def ua_mean(self) -> float:
        return float(np.mean(self.ua))

    @property
    def wa_mean(self) -> float:
        return float(np.mean(self.wa))

    def to_dict(self) -> dict[str, Any]:
        return {"ua_mean": round(self.ua_mean, 4), "ua_std": round(float(np.std(self.ua)), 4),
                "wa_mean": round(self.wa_mean, 4), "wa_std": round(float(np.std(self.wa)), 4),
                "ua_per_fold": [round(x, 4) for x in self.ua], "wa_per_fold": [round(x, 4) for x in self.wa],
                "confusion": self.confusion.tolist()}


def expected_calibration_error(probabilities: np.ndarray, truth: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the gap between confidence (the top probability) and accuracy, averaged over
    ``bins`` equal-width confidence bins weighted by how many predictions fall in each (Guo et al. 2017).

    Args:
        probabilities: ``(n, classes)``, rows summing to 1.
        truth: ``(n,)`` class indices.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    t = np.asarray(truth)
    if p.ndim != 2 or p.shape[0] != t.shape[0] or p.shape[0] == 0:
        raise InputError(f"probabilities {p.shape} and truth {t.shape} must be (n, classes) and (n,), n > 0")
    confidence, hit = p.max(axis=1), (p.argmax(axis=1) == t)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    gap = 0.0
    for b in range(bins):
        rows = which == b
        if rows.any():
            gap += rows.mean() * abs(hit[rows].mean() - confidence[rows].mean())
    return float(gap)
