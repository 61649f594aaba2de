"""The multi-corpus recipe's arithmetic: two frames stand for an utterance exactly, weights balance corpus and class,
speaker profiles combine from per-utterance statistics, and augmentation does what it says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeser.speaker import SpeakerProfile, SpeakerStats  # noqa: E402
from edgeser_export import augment as aug  # noqa: E402
from edgeser_export.model import FusionModel  # noqa: E402
from edgeser_export.multicorpus import (  # noqa: E402
    MASKS,
    Pooled,
    balanced_weights,
    fit_temperature,
    speaker_normalised,
    speaker_profiles,
    statistics_config,
    two_frames,
)
from edgeser_export.train import collate  # noqa: E402

pytestmark = pytest.mark.export


def stats_of(frames: np.ndarray) -> np.ndarray:
    x = frames.astype(np.float64)
    return np.concatenate([x.mean(0), x.std(0)]).astype(np.float32)


def test_two_frames_give_the_head_the_statistics_of_every_frame() -> None:
    rng = np.random.default_rng(0)
    utterances = [rng.normal(size=(int(rng.integers(5, 80)), 6)).astype(np.float32) * 3 + 1 for _ in range(4)]
    model = FusionModel(statistics_config(6)).eval()
    full = model.speech_statistics(collate([{"frame": u} for u in utterances], ["frame"]))
    two = model.speech_statistics(collate(two_frames(np.stack([stats_of(u) for u in utterances])), ["frame"]))
    assert torch.allclose(full, two, atol=1e-5)


def test_weights_balance_corpora_and_their_classes() -> None:
    corpus = np.array(["a"] * 10 + ["b"] * 30)
    labels = np.array([0] * 8 + [1] * 2 + [1] * 10 + [2] * 20)
    w = balanced_weights(corpus, labels)
    assert w[corpus == "a"].sum() == pytest.approx(w[corpus == "b"].sum())
    assert w[(corpus == "a") & (labels == 0)].sum() == pytest.approx(w[(corpus == "a") & (labels == 1)].sum())
    assert w[(corpus == "b") & (labels == 1)].sum() == pytest.approx(w[(corpus == "b") & (labels == 2)].sum())
    assert w.sum() == pytest.approx(len(w))


def test_speaker_profiles_and_normalisation_match_enrolment() -> None:
    rng = np.random.default_rng(1)
    spk = ["s1", "s1", "s2"]
    frames = [rng.normal(size=(n, 4)).astype(np.float32) * (k + 1) + k for k, n in enumerate((7, 13, 9))]
    stats = np.stack([stats_of(f) for f in frames])
    pooled = Pooled(np.stack([stats, stats], 1), np.array([[f.shape[0]] * len(MASKS) for f in frames]))
    profiles = speaker_profiles(pooled, "voiced", spk)
    enrolled = SpeakerStats(4)
    enrolled.add(frames[0])
    enrolled.add(frames[1])
    p = enrolled.profile("x" * 64, 0)
    assert np.allclose(profiles["s1"][0], p.mean, atol=1e-5) and np.allclose(profiles["s1"][1], p.std, atol=1e-5)
    profile = SpeakerProfile(encoder_sha256="x" * 64, layer=0, mean=p.mean, std=p.std, frames=p.frames,
                             seconds=0.0, utterances=2)
    got = speaker_normalised(stats[:1], ["s1"], profiles)[0]
    assert np.allclose(got, stats_of(profile.normalise(frames[0])), atol=1e-4)


def test_augmentation_is_seeded_finite_and_at_the_asked_snr() -> None:
    rng = np.random.default_rng(2)
    t = np.arange(16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    talkers = [(0.1 * rng.standard_normal(24000)).astype(np.float32)]
    a, done_a = aug.augment(x, np.random.default_rng(5), talkers)
    b, done_b = aug.augment(x, np.random.default_rng(5), talkers)
    assert done_a == done_b and np.array_equal(a, b) and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.abs(a).max() <= 1.0
    noise = aug.coloured_noise(x.size, "pink", rng)
    mixed = aug.add_noise(x, noise, 10.0)
    assert 20 * np.log10(aug.level(x) / aug.level(mixed - x)) == pytest.approx(10.0, abs=0.01)
    padded = aug.pad_silence(x, 1.0, 0.5, rng, floor_db=-70)  # below trim's 0.5% of full scale
    assert padded.size == x.size + 24000 and x.size - 1600 < aug.trim(padded).size < x.size + 1600
    assert x.size < aug.reverberate(x, 0.6, rng).size <= x.size + int(0.6 * 16000)  # the room's tail, at most RT60


def test_the_encoder_bundle_keeps_the_speech_graph_alone_and_its_outputs(tiny_bundle: Path, tmp_path: Path) -> None:
    """What a head is shipped over: the speech encoder only, float16-exact weights stored as float16, outputs equal
    to the source's (the random fixture's weights are not float16-exact, so they stay float32)."""
    from edgeser import EmotionRecognizer
    from edgeser.model.bundle import Bundle
    from edgeser_export.multicorpus import encoders_only_speech

    encoders_only_speech(tiny_bundle, tmp_path / "enc")
    m = Bundle.load(tmp_path / "enc").manifest
    assert m.text is None and m.fusion is None and m.speech is not None and list(m.files) == [m.speech.graph]
    assert m.speech.provenance["storage"]["initializers"] == 0
    wave = np.sin(np.arange(16000) / 16000 * 2 * np.pi * 220).astype(np.float32) * 0.3
    a = EmotionRecognizer.from_bundle(tiny_bundle).encode(wave, sample_rate=16000).hidden_states
    b = EmotionRecognizer.from_bundle(tmp_path / "enc").encode(wave, sample_rate=16000).hidden_states
    assert np.array_equal(a, b)


def test_temperature_weighs_each_group_the_same() -> None:
    # group a: 900 rows, confident and right (wants a low temperature); group b: 100 rows, confident and wrong half
    # the time (wants a high one). Pooled, a decides; weighed by group, b pulls the temperature up.
    rng = np.random.default_rng(0)
    a = np.log(np.full((900, 4), 0.01 / 3))
    a[:, 0] = np.log(0.99)
    b = np.log(np.full((100, 4), 0.01 / 3))
    b[:, 0] = np.log(0.99)
    labels = np.concatenate([np.zeros(900, int), np.where(rng.random(100) < 0.5, 0, 1)])
    lp = np.concatenate([a, b])
    pooled = fit_temperature(lp, labels)
    weighed = fit_temperature(lp, labels, ["a"] * 900 + ["b"] * 100)
    assert weighed > 1.5 * pooled


def test_a_temperature_is_shipped_only_where_it_carries_to_unheard_corpora() -> None:
    from edgeser_export.multicorpus import shipped_temperature

    helps = {"per_corpus": {"a": {"ece_raw": 0.3, "ece_calibrated": 0.1},
                            "b": {"ece_raw": 0.2, "ece_calibrated": 0.15}}, "temperature_all": 3.0}
    assert shipped_temperature(helps)[0] == 3.0
    hurts = {"per_corpus": {"a": {"ece_raw": 0.06, "ece_calibrated": 0.04}, "b": {"ece_raw": 0.17,
                                                                                   "ece_calibrated": 0.31}},
             "temperature_all": 1.5}
    t, why = shipped_temperature(hurts)
    assert t == 1.0 and "none is shipped" in why


def test_statistics_of_several_layers_are_each_layers_side_by_side(tmp_path: Path) -> None:
    """``pooled`` reads the listed exposed layers concatenated; the cache names keep their old form for the last
    layer alone (the files already computed stay valid) and change with any other reading."""
    import soundfile as sf

    from edgeser import EmotionRecognizer
    from edgeser.datasets import Dataset, Utterance
    from edgeser_export.multicorpus import cache_name, pooled
    from tests.conftest import SAMPLE

    rec = EmotionRecognizer.from_bundle("default")
    wave = sf.read(SAMPLE, dtype="float32")[0]
    last, _ = pooled(rec, wave)
    twice, _ = pooled(rec, wave, (-1, -1))
    dim = rec.speech.hidden_size
    np.testing.assert_allclose(twice[:, :dim], last[:, :dim], rtol=1e-6)  # the means of the first copy
    np.testing.assert_allclose(twice[:, dim:2 * dim], last[:, :dim], rtol=1e-6)  # then the second's
    assert twice.shape[1] == 2 * last.shape[1]
    ds = Dataset("x", (Utterance("u", Path(SAMPLE), "s", "s", "happy", None),))
    old = cache_name(ds, "clean", 0, 0, "graph")
    assert cache_name(ds, "clean", 0, 0, "graph", (-1,)) == old != cache_name(ds, "clean", 0, 0, "graph", (0, 1))


def test_a_student_per_fold_is_named_by_part_and_a_missing_one_is_named(tmp_path: Path) -> None:
    """int8_schemes --student with ``{part}``: one bundle per RAVDESS fold and left-out corpus, each found where the
    pattern says; a path without ``{part}`` serves them all; a missing student stops the run and is named."""
    from edgeser_benchmarks.int8_schemes import PARTS, student_parts

    assert PARTS == ("fold-1", "fold-2", "fold-3", "fold-4", "fold-5", "loco-ravdess", "loco-emodb", "loco-turev")
    for part in PARTS:
        (tmp_path / part / "bundle").mkdir(parents=True)
    got = student_parts(str(tmp_path / "{part}" / "bundle"))
    assert got == {part: tmp_path / part / "bundle" for part in PARTS}
    assert set(student_parts(str(tmp_path / "fold-2" / "bundle")).values()) == {tmp_path / "fold-2" / "bundle"}
    (tmp_path / "loco-turev" / "bundle").rmdir()
    with pytest.raises(SystemExit, match="loco-turev"):
        student_parts(str(tmp_path / "{part}" / "bundle"))
