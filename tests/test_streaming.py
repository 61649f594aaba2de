"""Streaming: utterance detection on synthetic patterns with known boundaries, max-length splitting, partial
results, back-pressure, PCM sources, and silero-vad on real speech."""

from __future__ import annotations

import io
import itertools
import threading
import time

import numpy as np
import pytest

from edgeser.audio.vad import EnergyVad
from edgeser.errors import InputError
from edgeser.streaming import (
    SAMPLE_RATE,
    AudioStream,
    Source,
    StreamOptions,
    UtteranceDetector,
    microphone_source,
    pcm_source,
    stream,
)

SR = SAMPLE_RATE


def pattern(*parts: tuple[str, float], seed: int = 0) -> np.ndarray:
    """Concatenated ``("tone"|"noise"|"silence", seconds)`` parts."""
    rng = np.random.default_rng(seed)
    out = []
    for kind, seconds in parts:
        n = int(seconds * SR)
        if kind == "tone":
            out.append(0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / SR))
        elif kind == "noise":
            out.append(0.1 * rng.standard_normal(n))
        else:
            out.append(1e-4 * rng.standard_normal(n))  # near-silence, as a real room
    return np.concatenate(out).astype(np.float32)


def detect(wave: np.ndarray, options: StreamOptions, chunk: int = 1600) -> list:  # type: ignore[type-arg]
    d = UtteranceDetector(EnergyVad(-40), options)
    out = []
    for i in range(0, wave.size, chunk):
        out += d.feed(wave[i : i + chunk])
    return out + d.flush()


def test_known_boundaries_are_found_within_a_vad_chunk() -> None:
    wave = pattern(("silence", 1.0), ("tone", 1.5), ("silence", 1.0), ("noise", 0.8), ("silence", 2.0),
                   ("tone", 0.5), ("silence", 0.5))
    truth = [(1.0, 2.5), (3.5, 4.3), (6.3, 6.8)]
    opts = StreamOptions(pad_s=0.0, min_silence_s=0.3, min_speech_s=0.2)
    found = [u for u in detect(wave, opts) if not u.partial]
    assert len(found) == 3
    for u, (a, b) in zip(found, truth, strict=True):
        assert abs(u.start_s - a) <= 0.032 and abs(u.end_s - b) <= 0.032  # one 32 ms VAD window
        assert u.samples.size == pytest.approx((u.end_s - u.start_s) * SR, abs=1)


def test_padding_short_bursts_and_chunk_size_independence() -> None:
    wave = pattern(("silence", 1.0), ("tone", 0.1), ("silence", 1.0), ("tone", 1.0), ("silence", 1.0))
    opts = StreamOptions(pad_s=0.2, min_speech_s=0.25)
    a = detect(wave, opts, chunk=160)
    b = detect(wave, opts, chunk=7919)
    assert len(a) == len(b) == 1  # the 100 ms burst is below min_speech_s
    assert a[0].start_s == b[0].start_s == pytest.approx(2.1 - 0.2, abs=0.032)
    assert a[0].end_s == pytest.approx(3.1 + 0.2, abs=0.032)
    np.testing.assert_array_equal(a[0].samples, b[0].samples)


def test_long_speech_is_split_never_dropped() -> None:
    wave = pattern(("silence", 0.5), ("noise", 7.0), ("silence", 1.0))
    found = detect(wave, StreamOptions(pad_s=0.0, max_utterance_s=3.0))
    assert [u.split for u in found] == [True, True, False]
    assert sum(u.samples.size for u in found) == pytest.approx(7.0 * SR, abs=3 * 512)
    for a, b in itertools.pairwise(found):
        assert b.start_s == pytest.approx(a.end_s)  # contiguous: nothing lost between pieces


def test_partial_results_while_speech_goes_on() -> None:
    wave = pattern(("silence", 0.5), ("tone", 3.2), ("silence", 1.0))
    found = detect(wave, StreamOptions(pad_s=0.0, partial_every_s=1.0))
    partial = [u for u in found if u.partial]
    assert len(partial) == 3 and next(u for u in found if not u.partial).end_s == pytest.approx(3.7, abs=0.04)
    assert all(u.start_s == pytest.approx(0.5, abs=0.04) for u in partial)


def test_end_of_stream_closes_the_open_utterance() -> None:
    found = detect(pattern(("silence", 0.5), ("tone", 1.0)), StreamOptions(pad_s=0.0))
    assert len(found) == 1 and found[0].end_s == pytest.approx(1.5, abs=0.04)


def test_backpressure_drops_the_oldest_and_counts_it() -> None:
    wave = pattern(*([("tone", 0.4), ("silence", 0.4)] * 8))
    gate = threading.Event()

    def slow(samples: np.ndarray) -> str:
        gate.wait(5)  # recognition stalls until the whole stream has been read
        return "ok"

    def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, wave.size, 1600):
            yield wave[i : i + 1600]
        gate.set()

    results = list(stream(slow, Source(chunks(), live=True, name="t"),
                          StreamOptions(pad_s=0.0, min_speech_s=0.1, min_silence_s=0.2, queue_size=2), EnergyVad()))
    total = len(results) + sum(r.dropped_before for r in results)
    assert total == 8 and sum(r.dropped_before for r in results) >= 4
    assert [r.start_s for r in results] == sorted(r.start_s for r in results)


def test_block_policy_loses_nothing() -> None:
    wave = pattern(*([("tone", 0.4), ("silence", 0.4)] * 6))

    def slow(samples: np.ndarray) -> int:
        time.sleep(0.02)
        return samples.size

    src = Source((wave[i : i + 4000] for i in range(0, wave.size, 4000)), live=False, name="f")
    results = list(stream(slow, src, StreamOptions(pad_s=0.0, min_speech_s=0.1, min_silence_s=0.2, queue_size=1,
                                                   backpressure="block"), EnergyVad()))
    assert len(results) == 6 and all(r.dropped_before == 0 and r.latency_s > 0 for r in results)


def test_options_given_for_a_file_keep_the_file_from_dropping() -> None:
    """Options that say nothing of back-pressure ("auto") block for a file read as fast as it goes, as no options
    do (issue 25, item 2: any StreamOptions used to reset it to drop-oldest), and drop for a live source."""
    wave = pattern(*([("tone", 0.4), ("silence", 0.4)] * 6))
    opts = StreamOptions(pad_s=0.0, min_speech_s=0.1, min_silence_s=0.2, queue_size=1)
    assert opts.backpressure == "auto"
    assert opts.resolved(live=False).backpressure == "block" and opts.resolved(live=True).backpressure == "drop-oldest"

    def slow(samples: np.ndarray) -> int:
        time.sleep(0.05)
        return samples.size

    src = Source((wave[i : i + 4000] for i in range(0, wave.size, 4000)), live=False, name="f")
    results = list(stream(slow, src, opts, EnergyVad()))
    assert len(results) == 6 and all(r.dropped_before == 0 for r in results)
    assert AudioStream(None, opts, EnergyVad()).options.backpressure == "drop-oldest"  # pushed audio is live


def test_a_failing_recognizer_gives_an_error_result_and_the_stream_goes_on() -> None:
    """Any exception in recognition (not only EdgeserError: a ValueError of the text normaliser, an ONNX Runtime
    error) becomes that utterance's error; the next utterances are still recognised and the stream ends."""
    wave = pattern(*([("tone", 0.4), ("silence", 0.4)] * 3))
    calls = itertools.count()

    def flaky(samples: np.ndarray) -> int:
        if next(calls) == 1:
            raise ValueError("could not normalise 'version 1.2.3'")
        return samples.size

    src = Source((wave[i : i + 1600] for i in range(0, wave.size, 1600)), live=False, name="f")
    done: list[list] = []  # type: ignore[type-arg]
    consumer = threading.Thread(target=lambda: done.append(list(stream(
        flaky, src, StreamOptions(pad_s=0.0, min_speech_s=0.1, min_silence_s=0.2), EnergyVad()))))
    consumer.start()
    consumer.join(10)
    assert not consumer.is_alive(), "the stream hung after a failed recognition"
    results = done[0]
    assert [r.error is None for r in results] == [True, False, True]
    assert "ValueError" in results[1].error and "version 1.2.3" in results[1].error
    assert results[2].prediction is not None


def test_pcm_source_resamples_and_downmixes() -> None:
    rate = 48000
    t = np.arange(rate) / rate
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1) * 0.5
    pcm = (stereo * 32767).astype("<i2").tobytes()
    chunks = list(pcm_source(io.BytesIO(pcm + b"\x01"), sample_rate=rate, channels=2).chunks)  # odd tail byte
    x = np.concatenate(chunks)
    assert x.size == pytest.approx(SR, abs=64) and np.abs(x).max() == pytest.approx(0.5, abs=0.02)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError):
        StreamOptions(threshold=1.5)
    with pytest.raises(ValueError):
        StreamOptions(max_utterance_s=0.1)
    with pytest.raises(ValueError):
        StreamOptions(backpressure="unbounded")


def test_silero_finds_the_speech_in_the_sample() -> None:
    """The shipped silero-vad model (no silero-vad package needed) finds both copies of the sample."""
    from edgeser.audio import load_audio
    from edgeser.audio.vad import SileroVad
    from tests.conftest import SAMPLE

    speech = load_audio(SAMPLE)
    quiet = pattern(("silence", 1.5))
    wave = np.concatenate([quiet, speech, quiet, speech, quiet])
    d = UtteranceDetector(SileroVad(), StreamOptions(pad_s=0.0, min_silence_s=0.5))
    found = [u for u in d.feed(wave) + d.flush() if not u.partial]
    assert len(found) == 2
    first_start = 1.5 + np.argmax(np.abs(speech) > 0.02) / SR  # where the sample becomes audible
    assert abs(found[0].start_s - first_start) < 0.25
    assert found[1].start_s > 1.5 + speech.size / SR + 1.0


# ---- the push-style stream object ----

def _push(stream_: AudioStream, wave: np.ndarray, rate: int, piece_s: float = 0.1) -> None:
    step = int(piece_s * rate)
    for i in range(0, wave.size, step):
        stream_.accept_waveform(rate, wave[i : i + step])


def test_audio_stream_pushed_at_48_khz_finds_what_the_detector_finds_at_16_khz() -> None:
    """One thread pushes 48 kHz audio and decodes as it goes (no worker thread anywhere); the utterances are
    those the detector finds in the same audio at 16 kHz, within a VAD window."""
    import soxr

    wave = pattern(("silence", 1.0), ("tone", 1.5), ("silence", 1.0), ("noise", 0.8), ("silence", 1.0))
    opts = StreamOptions(pad_s=0.0, min_silence_s=0.3, min_speech_s=0.2)
    truth = detect(wave, opts)
    wave48 = soxr.resample(wave, SR, 48_000).astype(np.float32)
    s = AudioStream(lambda x: x.size, opts, EnergyVad(-40))
    results = []
    for i in range(0, wave48.size, 4800):
        s.accept_waveform(48_000, wave48[i : i + 4800])
        while s.is_ready():
            results.append(s.decode())
    s.input_finished()
    while (r := s.decode()) is not None:
        results.append(r)
    assert s.finished and s.decode(timeout=0) is None
    assert len(results) == len(truth) == 2
    for r, u in zip(results, truth, strict=True):
        assert abs(r.start_s - u.start_s) <= 0.032 and abs(r.end_s - u.end_s) <= 0.032
        assert r.prediction == pytest.approx(u.samples.size, abs=2 * 512)  # the recognizer saw 16 kHz samples
    assert s.samples_accepted == pytest.approx(wave.size, abs=64)


def test_integer_pcm_pushed_into_a_stream_is_scaled_as_predict_scales_it() -> None:
    """int16 samples pushed into a stream reach the recogniser as the same float audio as the float32 samples do,
    and as load_audio (predict's path) reads them (issue 25, item 1: they used to arrive unscaled)."""
    from edgeser.audio import load_audio, pcm_to_float

    wave = pattern(("silence", 0.5), ("tone", 1.0), ("silence", 0.8))
    pcm = np.round(wave * 32767).astype(np.int16)
    np.testing.assert_array_equal(pcm_to_float(pcm), load_audio(pcm, 16_000))

    def heard(samples: np.ndarray) -> list[np.ndarray]:
        s = AudioStream(lambda x: x.copy(), StreamOptions(pad_s=0.0, min_speech_s=0.2, min_silence_s=0.3),
                        EnergyVad(-40))
        _push(s, samples, SR)
        s.input_finished()
        out = []
        while (r := s.decode()) is not None:
            out.append(r.prediction)
        return out

    floats, ints = heard(wave), heard(pcm)
    assert len(floats) == len(ints) == 1
    assert np.abs(ints[0]).max() <= 1.0
    np.testing.assert_allclose(ints[0], floats[0], atol=1e-4)
    with pytest.raises(InputError, match="dtype bool"):
        AudioStream(None, StreamOptions(), EnergyVad()).accept_waveform(16_000, np.zeros(160, bool))


def test_audio_stream_refuses_what_it_cannot_use() -> None:
    s = AudioStream(lambda x: 0, StreamOptions(), EnergyVad())
    with pytest.raises(InputError, match="one rate per stream"):
        s.accept_waveform(16_000, np.zeros(160, np.float32))
        s.accept_waveform(48_000, np.zeros(480, np.float32))
    with pytest.raises(InputError, match="mono"):
        s.accept_waveform(16_000, np.zeros((2, 160), np.float32))
    with pytest.raises(InputError, match="NaN"):
        s.accept_waveform(16_000, np.full(160, np.nan, np.float32))
    with pytest.raises(InputError, match="sample_rate"):
        AudioStream(None, StreamOptions(), EnergyVad()).accept_waveform(0, np.zeros(10, np.float32))
    s.input_finished()
    with pytest.raises(InputError, match="input_finished"):
        s.accept_waveform(16_000, np.zeros(160, np.float32))
    with pytest.raises(InputError, match="pop"):
        AudioStream(None, StreamOptions(), EnergyVad()).decode()


def test_audio_stream_drops_the_oldest_waiting_utterance_and_says_so_in_the_next_result() -> None:
    wave = pattern(*([("tone", 0.4), ("silence", 0.4)] * 6))
    s = AudioStream(lambda x: "ok", StreamOptions(pad_s=0.0, min_speech_s=0.1, min_silence_s=0.2, queue_size=2),
                    EnergyVad())
    _push(s, wave, SR)  # nobody decodes while all six close
    s.input_finished()
    results = [s.decode(), s.decode()]
    assert s.decode() is None and s.dropped == 4
    assert [r.dropped_before for r in results] == [4, 0]
    assert results[0].start_s == pytest.approx(4 * 0.8, abs=0.04)  # the two newest were kept


def test_audio_stream_pop_hands_utterances_to_another_worker_and_close_releases_a_waiting_taker() -> None:
    wave = pattern(("silence", 0.5), ("tone", 0.5), ("silence", 0.5))
    s = AudioStream(None, StreamOptions(pad_s=0.0, min_speech_s=0.1, min_silence_s=0.2, backpressure="block"),
                    EnergyVad())
    _push(s, wave, SR)
    item = s.pop()
    assert item is not None and item[1] == 0 and item[0].start_s == pytest.approx(0.5, abs=0.04)
    got: list[object] = []
    taker = threading.Thread(target=lambda: got.append(s.pop(timeout=None)))
    taker.start()
    taker.join(0.05)
    assert taker.is_alive()  # still waiting for the next utterance (nothing to wait on: it must not return)
    s.close()
    taker.join(2)
    assert not taker.is_alive() and got == [None]


def test_the_microphone_source_is_resampled_by_the_stream_it_feeds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The microphone gives blocks at the device's rate (a fake sounddevice at 44.1 kHz here); stream() feeds them
    to an AudioStream, which resamples: the utterance comes out where it was played, in 16 kHz samples."""
    import sys
    import types

    import soxr

    wave = soxr.resample(pattern(("silence", 0.6), ("tone", 1.0), ("silence", 0.8)), SR, 44_100).astype(np.float32)

    class FakeInputStream:
        def __init__(self, samplerate: int, blocksize: int, callback, **_: object) -> None:  # type: ignore[no-untyped-def]
            assert samplerate == 44_100
            self.blocks = [wave[i : i + blocksize, None] for i in range(0, wave.size, blocksize)]
            self.callback = callback

        def __enter__(self) -> FakeInputStream:
            for b in self.blocks:
                self.callback(b, len(b), None, None)
            return self

        def __exit__(self, *_: object) -> None:
            pass

    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(InputStream=FakeInputStream))
    src = microphone_source(sample_rate=44_100)
    assert src.sample_rate == 44_100 and src.live
    blocks = iter(src.chunks)
    n = -(-wave.size // 4410)
    limited = Source((next(blocks) for _ in range(n)), live=True, name="mic", sample_rate=44_100)
    results = list(stream(lambda x: x.size, limited, StreamOptions(pad_s=0.0, min_speech_s=0.1, min_silence_s=0.2),
                          EnergyVad()))
    assert len(results) == 1
    r = results[0]
    assert r.start_s == pytest.approx(0.6, abs=0.04) and r.end_s == pytest.approx(1.6, abs=0.04)
    assert r.prediction == pytest.approx(SR * 1.0, abs=2 * 512)
