"""UA/WA and confusion matrices against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from edgeser.metrics import FoldScores, confusion_matrix, unweighted_accuracy, weighted_accuracy


def test_hand_computed_example() -> None:
    # truth: 4 neutral, 2 happy, 2 angry, 2 sad. Right: 3 neutral, 1 happy, 2 angry, 0 sad -> 6/10.
    y_true = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3]
    y_pred = [0, 0, 0, 1, 1, 0, 2, 2, 0, 1]
    cm = confusion_matrix(y_true, y_pred, 4)
    assert cm.tolist() == [[3, 1, 0, 0], [1, 1, 0, 0], [0, 0, 2, 0], [1, 1, 0, 0]]
    assert weighted_accuracy(cm) == pytest.approx(0.6)
    assert unweighted_accuracy(cm) == pytest.approx((3 / 4 + 1 / 2 + 1 + 0) / 4)  # 0.5625


def test_ua_ignores_classes_absent_from_the_truth() -> None:
    cm = confusion_matrix([0, 0, 1], [0, 2, 1], 4)
    assert unweighted_accuracy(cm) == pytest.approx((1 / 2 + 1) / 2)


def test_fold_scores() -> None:
    folds = [confusion_matrix([0, 1], [0, 1], 2), confusion_matrix([0, 1, 1, 1], [1, 1, 1, 1], 2)]
    s = FoldScores.from_folds(folds)
    assert s.ua == (1.0, 0.5) and s.wa == (1.0, 0.75)
    assert s.ua_mean == 0.75 and s.to_dict()["ua_std"] == 0.25
    np.testing.assert_array_equal(s.confusion, [[1, 1], [0, 4]])


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="class ids"):
        confusion_matrix([0, 5], [0, 1], 4)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix([0], [0, 1], 4)
    with pytest.raises(ValueError, match="no examples"):
        unweighted_accuracy(np.zeros((4, 4), dtype=np.int64))


def test_evaluate_scores_predictions_and_counts_refusals() -> None:
    import types
    from pathlib import Path

    from edgeser.datasets import Utterance
    from edgeser.errors import AudioError
    from edgeser.metrics import evaluate

    said = {"a": "neutral", "b": "happy", "c": "happy", "d": None}

    class Rec:
        bundle = types.SimpleNamespace(manifest=types.SimpleNamespace(labels=("neutral", "happy", "angry", "sad")))

        def predict(self, path: Path, text: str | None, check_speech: bool = True) -> types.SimpleNamespace:
            label = said[path.stem]
            if label is None:
                raise AudioError("silent")
            return types.SimpleNamespace(label=label)

    utts = [Utterance(k, Path(f"{k}.wav"), "s", "s", truth, None)
            for k, truth in (("a", "neutral"), ("b", "happy"), ("c", "neutral"), ("d", "sad"))]
    got = evaluate(Rec(), utts)  # type: ignore[arg-type]
    assert got["failed"] == 1 and got["utterances"] == 3
    assert got["ua"] == pytest.approx((1 / 2 + 1) / 2) and got["wa"] == pytest.approx(2 / 3)
    assert "predictions" not in got
    kept = evaluate(Rec(), utts, keep_predictions=True)  # type: ignore[arg-type]
    assert kept["truth"] == [0, 1, 0, 3] and kept["predictions"] == [0, 1, 1, -1]
