"""The cached-feature trainer: padding and masks, learning, and keeping the best validation epoch."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeser_export.model import FusionConfig  # noqa: E402
from edgeser_export.train import TrainConfig, collate, predict, train  # noqa: E402

pytestmark = pytest.mark.export


def test_collate_pads_and_masks() -> None:
    items = [{"word": np.ones((2, 3), np.float32)}, {"word": np.full((4, 3), 2.0, np.float32)}]
    batch = collate(items, ["word"])
    assert batch["word"].shape == (2, 4, 3)
    assert batch["word_mask"].tolist() == [[True, True, False, False], [True] * 4]
    assert float(batch["word"][0, 2:].abs().sum()) == 0.0


def toy(n: int, seed: int) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """Text-only toy task: the class is the channel block that carries a bump, tokens of varying length."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    items = []
    for c in y:
        t = rng.normal(size=(rng.integers(2, 9), 8)).astype(np.float32)
        t[:, 2 * c : 2 * c + 2] += 1.5
        items.append({"text": t})
    return items, y


def test_trains_and_keeps_the_best_validation_epoch() -> None:
    config = FusionConfig(speech_dim=1, text_dim=8, levels=(), early=False, late=True, dim=16, heads=2)
    items, y = toy(256, 0)
    valid = toy(128, 1)
    history: list[float] = []
    model, kept = train(config, items, y, TrainConfig(epochs=8, batch_size=32, lr=3e-3), valid=valid,
                        progress=lambda epoch, loss, ua: history.append(ua or 0.0))
    assert len(history) == 8 and kept["valid_ua"] == max(history) and history[kept["epoch"]] == kept["valid_ua"]
    test_items, test_y = toy(128, 2)
    assert (predict(model, test_items).argmax(1) == test_y).mean() > 0.9


def test_label_smoothing_keeps_training_probabilities_off_one() -> None:
    config = FusionConfig(speech_dim=1, text_dim=8, levels=(), early=False, late=True, dim=16, heads=2, dropout=0.0)
    items, y = toy(256, 0)
    top = {}
    for eps in (0.0, 0.2):
        model, _ = train(config, items, y, TrainConfig(epochs=30, batch_size=32, lr=3e-3, label_smoothing=eps))
        top[eps] = float(np.exp(predict(model, items).max(1)).mean())
    # smoothed towards 0.8 + 0.2 / 4 = 0.85 on the label; unsmoothed, a separable task goes to 1
    assert top[0.0] > 0.97 and top[0.2] < 0.9


def test_label_smoothing_outside_zero_to_one_is_refused() -> None:
    from edgeser.errors import InputError

    with pytest.raises(InputError, match="label_smoothing"):
        TrainConfig(label_smoothing=1.0)
