"""Calibration sets: balance, lengths, content hash and tampering, and the feed readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edgeser.datasets import Dataset, Utterance
from edgeser.errors import DatasetError
from edgeser_calibration.readers import OrtReader, feeds_for
from edgeser_calibration.sets import CalibrationSet, build, target_lengths


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """4 classes x 3 speakers x 2 utterances of 2 s noise bursts with distinct levels (so items can be traced)."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    utts = []
    for label in ("neutral", "happy", "angry", "sad"):
        for s in range(3):
            for k in range(2):
                path = root / f"{label}_{s}_{k}.wav"
                sf.write(path, (0.1 * rng.standard_normal(32000)).astype(np.float32), 16000)
                utts.append(Utterance(id=path.stem, path=path, speaker=f"spk{s}", group=f"spk{s}", label=label,
                                      transcript=f"this is {label} number {k}"))
    return Dataset("toy", tuple(utts))


def test_balanced_over_classes_and_speakers_with_lengths_over_the_range(corpus: Dataset, tmp_path: Path) -> None:
    cset = build(corpus, tmp_path / "set", n=24, seed=1, min_s=0.5, max_s=5.0)
    assert [sum(it.label == lb for it in cset.items) for lb in corpus.labels] == [6, 6, 6, 6]
    per_cell = {(it.label, it.speaker) for it in cset.items}
    assert len(per_cell) == 12  # every speaker of every class
    seconds = sorted(it.seconds for it in cset.items)
    np.testing.assert_allclose(seconds, np.geomspace(0.5, 5.0, 24), atol=2e-3)
    long = [it for it in cset.items if it.seconds > 2.5]
    assert long and all(len(it.sources) >= 2 for it in long)  # joined from same speaker and class
    assert all(src[0].startswith(it.label) and f"_{it.speaker[-1]}_" in src[0] for it in cset.items
               for src in it.sources)
    assert cset.describe()["per_label"] == {"angry": 6, "happy": 6, "neutral": 6, "sad": 6}


def test_seeded_and_hashed(corpus: Dataset, tmp_path: Path) -> None:
    a = build(corpus, tmp_path / "a", n=8, seed=3)
    b = build(corpus, tmp_path / "b", n=8, seed=3)
    c = build(corpus, tmp_path / "c", n=8, seed=4)
    assert a.sha256 == b.sha256 != c.sha256
    assert CalibrationSet.load(tmp_path / "a").items == a.items


def test_tampered_or_partial_sets_are_refused(corpus: Dataset, tmp_path: Path) -> None:
    build(corpus, tmp_path / "s", n=4, seed=0)
    wave, _ = sf.read(tmp_path / "s" / "audio" / "001.wav", dtype="float32")
    sf.write(tmp_path / "s" / "audio" / "001.wav", wave * 0.5, 16000, subtype="PCM_16")
    with pytest.raises(DatasetError, match="sha256"):
        CalibrationSet.load(tmp_path / "s")
    (tmp_path / "s" / "calibration.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(DatasetError, match="malformed"):
        CalibrationSet.load(tmp_path / "s")
    with pytest.raises(DatasetError, match="already exists"):
        build(corpus, tmp_path / "s", n=4)
    with pytest.raises(DatasetError, match="min_s"):
        build(corpus, tmp_path / "t", n=4, min_s=3, max_s=1)
    assert not (tmp_path / "t").exists()


def test_target_lengths_cover_the_range() -> None:
    lengths = target_lengths(5, 1.0, 16.0, np.random.default_rng(0))
    np.testing.assert_allclose(sorted(lengths), [1, 2, 4, 8, 16])


def test_ort_reader_protocol() -> None:
    reader = OrtReader([{"x": np.zeros(1)}, {"x": np.ones(1)}])
    assert reader.get_next()["x"][0] == 0 and reader.get_next()["x"][0] == 1 and reader.get_next() is None
    reader.rewind()
    assert reader.get_next() is not None
    with pytest.raises(DatasetError, match="no feeds"):
        OrtReader([])


def test_equal_lengths_cuts_every_feed_into_whole_windows_of_the_shortest() -> None:
    """What ONNX Runtime's histogram calibrators need: every feed of one shape, cut from the real inputs."""
    waves = [np.arange(n, dtype=np.float32)[None] for n in (5, 12, 7)]
    reader = OrtReader([{"input_values": w, "attention_mask": np.ones(w.shape, np.int64)} for w in waves])
    cut = reader.equal_lengths()
    assert cut.equal_lengths() is cut  # feeds of one length are used as they are, not copied again
    windows = list(cut)
    assert [f["input_values"].shape for f in windows] == [(1, 5)] * 4  # 1 + 2 + 1 whole windows
    np.testing.assert_array_equal(windows[2]["input_values"], waves[1][:, 5:10])
    assert all(f["attention_mask"].shape == (1, 5) for f in windows)
    frames = OrtReader([{"frame": np.zeros((1, t, 3), np.float32), "frame_mask": np.ones((1, t), bool)}
                        for t in (4, 9)])
    assert [f["frame"].shape for f in frames.equal_lengths()] == [(1, 4, 3)] * 3
    mixed = OrtReader([{"frame": np.zeros((1, 6, 3), np.float32), "word": np.zeros((1, 2, 3), np.float32)}])
    with pytest.raises(DatasetError, match="--method minmax"):
        mixed.equal_lengths()


@pytest.mark.export
def test_readers_give_each_graphs_inputs(corpus: Dataset, tmp_path: Path, tiny_bundle: Path) -> None:
    from edgeser import EmotionRecognizer

    rec = EmotionRecognizer.from_bundle(tiny_bundle)
    cset = build(corpus, tmp_path / "s", n=4, seed=0, min_s=1, max_s=3)
    speech = list(feeds_for("speech", cset, rec))
    assert len(speech) == 4 and set(speech[0]) == set(rec.speech.spec.input_names)
    np.testing.assert_allclose(sorted(f["input_values"].shape[1] for f in speech),
                               sorted(it.seconds * 16000 for it in cset.items), atol=8)  # seconds kept to 1 ms
    text = list(feeds_for("text", cset, rec))
    assert len(text) == 4 and set(text[0]) == set(rec.bundle.manifest.text.spec.input_names)  # type: ignore[union-attr]
    with pytest.raises(Exception, match="no emotion head"):
        feeds_for("fusion", cset, rec)


def test_an_interrupted_rebuild_keeps_the_old_set(corpus: Dataset, tmp_path: Path) -> None:
    """Overwriting a set replaces it only once the new one is complete: a build that fails half way leaves the old
    set as it was, and no staging folder."""
    old = build(corpus, tmp_path / "s", n=4, seed=0)

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build(corpus, tmp_path / "s", n=8, seed=1, overwrite=True, progress=stop)
    again = CalibrationSet.load(tmp_path / "s")
    assert again.sha256 == old.sha256 and len(again) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_the_fusion_reader_feeds_a_voiced_head_what_predict_does() -> None:
    """The shipped default pools voiced frames of the speech span: its INT8 calibration feeds must be those frames
    (edgeser.EmotionRecognizer.encode_speech), not every frame of the file."""
    import types

    from edgeser import EmotionRecognizer
    from edgeser.audio import load_audio
    from tests.conftest import SAMPLE

    rec = EmotionRecognizer.from_bundle("default")
    assert rec.bundle.manifest.fusion is not None and rec.bundle.manifest.fusion.frame_mask == "voiced"
    wave = load_audio(SAMPLE)
    padded = np.concatenate([np.zeros(24000, np.float32), wave])
    cset = types.SimpleNamespace(items=[types.SimpleNamespace(transcript=None)], audio=lambda i: padded)
    (feeds,) = list(feeds_for("fusion", cset, rec))  # type: ignore[arg-type]
    encoded, keep = rec.encode_speech(padded)
    assert feeds["frame_mask"].sum() == keep.sum() < rec.encode(padded, sample_rate=16000).num_frames[0]
    np.testing.assert_allclose(feeds["frame"][0, : keep.size], encoded.hidden_states[0, 0], atol=1e-6)
