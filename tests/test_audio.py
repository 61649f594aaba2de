"""Audio loading: formats, rates, channels, PCM types, and every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeser.audio import load_audio
from edgeser.errors import AudioError
from tests.conftest import SAMPLE


def dominant_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_any_rate_is_resampled_keeping_pitch_and_duration(rate: int) -> None:
    t = np.arange(rate) / rate
    x = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    y = load_audio(x, rate)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 16000) <= 1
    assert dominant_hz(y, 16000) == pytest.approx(1000, abs=2)
    assert np.sqrt(np.mean(y[2000:-2000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_resampling_removes_content_above_the_new_nyquist() -> None:
    rate = 48000
    t = np.arange(rate) / rate
    x = (0.5 * np.sin(2 * np.pi * 12000 * t)).astype(np.float32)  # above 8 kHz: must not alias into the band
    y = load_audio(x, rate)
    assert np.sqrt(np.mean(y**2)) < 0.01


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_24"), ("OGG", "VORBIS")])
def test_file_formats(tmp_path: Path, sine: np.ndarray, fmt: str, subtype: str) -> None:
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, sine, 16000, format=fmt, subtype=subtype)
    y = load_audio(path)
    assert abs(len(y) - len(sine)) <= 1
    assert dominant_hz(y, 16000) == pytest.approx(440, abs=2)


def test_stereo_file_is_averaged_to_mono(tmp_path: Path, sine: np.ndarray) -> None:
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([sine, np.zeros_like(sine)], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), sine / 2, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.uint8])
def test_integer_pcm_is_scaled_to_unit_range(sine: np.ndarray, dtype: type) -> None:
    info = np.iinfo(dtype)
    if info.min == 0:
        pcm = np.round(sine * 127 + 128).astype(dtype)
    else:
        pcm = np.round(sine * info.max).astype(dtype)
    np.testing.assert_allclose(load_audio(pcm, 16000), sine, atol=1.5 / (info.max - info.min) * 2)


def test_bundled_sample_loads() -> None:
    y = load_audio(SAMPLE)
    assert 1.5 < len(y) / 16000 < 3.0


@pytest.mark.parametrize(
    "audio,rate,message",
    [
        (np.zeros(0, np.float32), 16000, "empty"),
        (np.zeros((2, 0), np.float32), 16000, "empty"),  # was an IndexError
        (np.zeros((0, 2), np.float32), 16000, "empty"),
        (np.zeros(16000, np.float32), 16000, "silent"),
        (np.array([0.1, np.nan] * 8000, np.float32), 16000, "NaN"),
        (np.array([0.1, np.inf] * 8000, np.float32), 16000, "NaN or infinite"),
        (np.full((16000, 6), 0.1, np.float32), 16000, "6 channels"),
        (np.full((2, 16000), 0.1, np.float32), 16000, "16000 channels"),
        (np.full((4, 4, 4), 0.1, np.float32), 16000, "shape"),
        (np.array(["a"] * 100), 16000, "dtype"),
        (np.full(16000, 0.1, np.float32), None, "sample rate"),
        (np.full(16000, 0.1, np.float32), 0, "positive"),
    ],
)
def test_bad_arrays_raise_audio_error(audio: np.ndarray, rate: int | None, message: str) -> None:
    with pytest.raises(AudioError, match=message):
        load_audio(audio, rate)


def test_too_long_names_the_limit_and_the_option() -> None:
    with pytest.raises(AudioError, match=r"61\.0 s, the limit is 60\.0 s .*edgeser listen --file.*max_audio_s"):
        load_audio(np.full(61 * 8000, 0.1, np.float32), 8000, max_seconds=60.0)


def test_too_short_for_the_encoder_names_the_minimum() -> None:
    with pytest.raises(AudioError, match="needs at least 400"):
        load_audio(np.full(399, 0.1, np.float32), 16000, min_samples=400)
    assert len(load_audio(np.full(400, 0.1, np.float32), 16000, min_samples=400)) == 400


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x00this is not audio" * 10)
    with pytest.raises(AudioError, match="cannot decode"):
        load_audio(garbage)
    with pytest.raises(AudioError, match="no such audio file"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="file path or a numpy array"):
        load_audio(12345)  # type: ignore[arg-type]


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="empty"):
        load_audio(path)


def test_clipped_audio_warns_but_loads(caplog: pytest.LogCaptureFixture, sine: np.ndarray) -> None:
    clipped = np.clip(sine * 10, -1, 1)
    y = load_audio(clipped, 16000)
    assert len(y) == len(sine)
    assert "clipped" in caplog.text


@settings(max_examples=30, deadline=None)
@given(rate=st.integers(4000, 96000), seconds=st.floats(0.05, 2.0))
def test_output_length_follows_the_rate_ratio(rate: int, seconds: float) -> None:
    n = max(1, int(rate * seconds))
    x = np.random.default_rng(0).uniform(-0.5, 0.5, n).astype(np.float32)
    y = load_audio(x, rate)
    assert abs(len(y) - n * 16000 / rate) <= 1
    assert np.isfinite(y).all()


def test_recognizer_reads_and_checks_audio_once(tiny_bundle, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """segment() loads and validates its input once; the encoder does not read it again (one clip warning)."""
    from edgeser import EmotionRecognizer
    from edgeser.alignment.phonetics import Lexicon

    rec = EmotionRecognizer.from_bundle(tiny_bundle)
    loud = np.clip(load_audio(SAMPLE) * 50, -1, 1)
    rec.segment(loud, "kids are talking", sample_rate=16000, lexicon=Lexicon({}, g2p=None))
    assert caplog.text.count("clipped") == 1


def test_resampling_in_pieces_equals_resampling_at_once() -> None:
    """The streaming resampler (service, microphone, PCM on stdin) gives the one-shot resampler's signal, joins
    included: no clicks where the pieces meet."""
    from edgeser.audio import Resampler, resample

    t = np.arange(48000 * 2) / 48000
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    whole = resample(wave, 48000, 16000)
    r = Resampler(48000, 16000)
    pieces = [r(p) for p in np.array_split(wave, 37)] + [r(np.zeros(0, np.float32), last=True)]
    joined = np.concatenate(pieces)
    assert abs(joined.size - whole.size) <= 2
    n = min(joined.size, whole.size)
    # away from the very start and end (the filters' edges), the two agree closely
    assert np.max(np.abs(joined[200 : n - 200] - whole[200 : n - 200])) < 1e-3
    assert Resampler(16000, 16000)(wave[:5]).tolist() == wave[:5].tolist()


def _wav_header(data_bytes: int, rate: int = 16000) -> bytes:
    import struct

    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate,
                                                                                    2 * rate, 2, 16)
            + b"data" + struct.pack("<I", data_bytes))


def test_a_long_file_is_refused_from_its_header_before_decoding(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1 GiB (sparse) WAV is refused by its header, without decoding a sample (issue 25, item 16: predict decoded
    it all, 2.67 GB and 12 s, before saying "limit 60 s"; a 4 GiB one ended in a MemoryError)."""
    path = tmp_path / "huge.wav"
    with open(path, "wb") as f:
        f.write(_wav_header((1 << 30) - 44))
        f.truncate(1 << 30)  # sparse: no disk used

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("the audio was decoded")

    monkeypatch.setattr(sf, "read", no_decoding)
    with pytest.raises(AudioError, match=r"33554\.4 s, the limit is 60\.0 s"):
        load_audio(path, max_seconds=60)


def test_a_truncated_wav_is_read_with_a_warning(tmp_path: Path, sine: np.ndarray,
                                                caplog: pytest.LogCaptureFixture) -> None:
    full = tmp_path / "full.wav"
    sf.write(full, np.tile(sine, 4), 16000, subtype="PCM_16")
    data = full.read_bytes()
    half = tmp_path / "half.wav"
    half.write_bytes(data[: len(data) // 2])
    with caplog.at_level("WARNING"):
        wave = load_audio(half)
    assert wave.size == pytest.approx(np.tile(sine, 4).size / 2, abs=32)
    assert any("truncated" in r.getMessage() for r in caplog.records)


def test_not_audio_and_folders_are_named_plainly(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A text file called .mp3 is refused in one line, without libmpg123's notes on stderr; a folder gets a
    pointer to `edgeser batch` (issue 25, item 22)."""
    fake = tmp_path / "song.mp3"
    fake.write_text("this is not audio at all")
    with pytest.raises(AudioError, match="not MPEG audio"):
        load_audio(fake)
    assert "Note:" not in capfd.readouterr().err
    (tmp_path / "clips").mkdir()
    with pytest.raises(AudioError, match="edgeser batch"):
        load_audio(tmp_path / "clips")
