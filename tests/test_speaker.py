"""Speaker profiles: running statistics, the file format, and the checks that tie a profile to its encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeser.speaker import SpeakerError, SpeakerProfile, SpeakerStats


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=6), st.integers(0, 2**31 - 1))
def test_running_statistics_equal_those_of_all_frames_at_once(lengths: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    chunks = [rng.normal(3.0, 2.0, size=(n, 5)) for n in lengths]
    stats = SpeakerStats(5)
    for c in chunks:
        stats.add(c, seconds=0.02 * len(c))
    p = stats.profile("abc", 1)
    everything = np.concatenate(chunks)
    np.testing.assert_allclose(p.mean, everything.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(p.std, everything.std(0), rtol=1e-4, atol=1e-5)
    assert p.frames == len(everything) and p.utterances == len(chunks)
    assert p.seconds == pytest.approx(0.02 * len(everything))


def test_normalise_gives_zero_mean_unit_std_on_the_enrolled_frames() -> None:
    rng = np.random.default_rng(0)
    frames = rng.normal(5.0, 3.0, size=(500, 4)).astype(np.float32)
    stats = SpeakerStats(4)
    stats.add(frames)
    z = stats.profile("x", 0).normalise(frames)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(0), 1.0, atol=1e-3)


def _profile() -> SpeakerProfile:
    stats = SpeakerStats(3)
    stats.add(np.arange(12, dtype=np.float32).reshape(4, 3), seconds=0.08)
    return stats.profile("f" * 64, 2)


def test_a_profile_round_trips_through_its_file(tmp_path: Path) -> None:
    p = _profile()
    path = p.save(tmp_path / "anna.json")
    data = json.loads(path.read_text())
    assert data["format"] == "edgeser-speaker" and data["version"] == 1 and data["dim"] == 3
    back = SpeakerProfile.load(path)
    np.testing.assert_array_equal(back.mean, p.mean)
    np.testing.assert_array_equal(back.std, p.std)
    assert (back.encoder_sha256, back.layer, back.frames) == (p.encoder_sha256, 2, 4)
    assert [f.name for f in tmp_path.iterdir()] == ["anna.json"]  # no temporary file left behind


@pytest.mark.parametrize("content, message", [
    ("not json", "not valid JSON"),
    ('{"format": "other"}', "not an edgeser speaker profile"),
    ('{"format": "edgeser-speaker", "version": 9}', "version 9"),
    ('{"format": "edgeser-speaker", "version": 1, "encoder_sha256": "a", "layer": 0}', "malformed"),
    ('{"format": "edgeser-speaker", "version": 1, "encoder_sha256": "a", "layer": 0, "frames": 3, "seconds": 1,'
     ' "utterances": 1, "mean": [1, 2], "std": [1]}', "equally long"),
    ('{"format": "edgeser-speaker", "version": 1, "encoder_sha256": "a", "layer": 0, "frames": 3, "seconds": 1,'
     ' "utterances": 1, "mean": [NaN], "std": [1]}', "finite"),
])
def test_bad_profile_files_are_refused_clearly(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(SpeakerError, match=message):
        SpeakerProfile.load(path)


def test_missing_profile_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SpeakerError, match="edgeser enroll"):
        SpeakerProfile.load(tmp_path / "nobody.json")
    with pytest.raises(SpeakerError, match="no such folder"):
        _profile().save(tmp_path / "missing" / "p.json")


def test_a_profile_is_tied_to_its_encoder_and_layer() -> None:
    p = _profile()
    p.check("f" * 64, 2, 3)
    with pytest.raises(SpeakerError, match="another speech encoder"):
        p.check("e" * 64, 2, 3)
    with pytest.raises(SpeakerError, match="layer 2"):
        p.check("f" * 64, 1, 3)
    with pytest.raises(SpeakerError, match="no speech frames"):
        SpeakerStats(3).profile("x", 0)


PROFILE_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**6), st.floats(allow_nan=True),
                           st.text(max_size=6), st.lists(st.floats(allow_nan=True), max_size=4),
                           st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=80, deadline=None)
@given(edits=st.dictionaries(st.sampled_from(["format", "version", "encoder_sha256", "layer", "mean", "std", "frames",
                                              "seconds", "utterances", "dim"]), PROFILE_VALUES, min_size=1,
                             max_size=4))
def test_fuzzed_profiles_load_or_fail_with_a_speaker_error(edits: dict[str, object]) -> None:
    """Any value in any field of a profile: it loads, or a SpeakerError names the file; never another exception
    (the CLI turns only edgeser's own errors into one line)."""
    data = {**_profile().to_dict(), **edits}
    try:
        SpeakerProfile.from_dict(data, "me.json")
    except SpeakerError as e:
        assert "me.json" in str(e)
