"""Live recognition: voice activity detection cuts a stream into utterances; each goes through the whole
pipeline; results come with their time in the stream and the latency from end of speech to result.

Pieces, each usable alone:

- :class:`~edgeser.audio.vad.SileroVad` (in :mod:`edgeser.audio.vad`): silero-vad's ONNX model (MIT; shipped in
  ``edgeser/models/vad`` with its licence, run by ONNX Runtime): speech probability per 32 ms.
- :class:`UtteranceDetector`: probabilities → utterances, with padding, minimum speech, minimum silence,
  and a maximum length at which long speech is split (never dropped); optional partial results.
- Sources (:mod:`edgeser.audio.sources`, re-exported here): :func:`file_source` (real-time pace or as fast as possible),
  :func:`pcm_source` (raw 16-bit PCM, e.g. stdin from a ROS node or GStreamer), :func:`microphone_source`
  (``sounddevice``).
- :class:`AudioStream`: the push-style stream object (as sherpa-onnx's ``OnlineStream``): the caller pushes
  audio at its own rate with ``accept_waveform(sample_rate, samples)`` and decides where recognition runs
  (``decode()`` in any thread, or ``pop()`` to hand utterances to its own worker, as the WebSocket service
  does). When utterances wait beyond ``queue_size``, the oldest is dropped and counted
  (``StreamResult.dropped_before``), so memory stays bounded.
- :func:`stream`: the pull-style loop over a :class:`Source` on top of it: the detector in the caller's
  thread, recognition in a worker thread; file sources read as fast as possible wait for recognition
  instead of dropping (``backpressure="block"``).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeser.audio import SAMPLE_RATE, Resampler, pcm_to_float
from edgeser.audio.sources import InputMeter as InputMeter
from edgeser.audio.sources import PcmDecoder as PcmDecoder
from edgeser.audio.sources import Source as Source
from edgeser.audio.sources import file_source as file_source
from edgeser.audio.sources import microphone_source as microphone_source
from edgeser.audio.sources import pcm_source as pcm_source
from edgeser.audio.vad import CHUNK, SileroVad
from edgeser.errors import AudioError, EdgeserError, InputError
from edgeser.results import Prediction

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class StreamOptions:
    """How the stream is cut into utterances.

    Attributes:
        threshold: Speech starts when the VAD probability reaches this.
        neg_threshold: ...and may end once it falls below this (default ``threshold - 0.15``).
        min_speech_s: Shorter bursts are ignored.
        min_silence_s: Silence that ends an utterance. It is also the least end-of-speech → result delay.
        pad_s: Audio kept before the start and after the end of speech.
        max_utterance_s: Longer speech is split here; the rest continues as the next utterance.
        partial_every_s: Emit a partial result every this many seconds of ongoing speech (``None``: never).
        queue_size: Utterances waiting for recognition before back-pressure applies.
        backpressure: ``"drop-oldest"`` (the oldest waiting utterance is dropped and counted), ``"block"``
            (reading waits for recognition) or ``"auto"``: drop-oldest for live audio (a microphone, a pushed
            :class:`AudioStream`), block for a file or pipe read as fast as it goes (:meth:`resolved`).
    """

    threshold: float = 0.5
    neg_threshold: float | None = None
    min_speech_s: float = 0.25
    min_silence_s: float = 0.3
    pad_s: float = 0.1
    max_utterance_s: float = 10.0
    partial_every_s: float | None = None
    queue_size: int = 4
    backpressure: str = "auto"

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise InputError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.max_utterance_s <= self.min_speech_s:
            raise InputError("max_utterance_s must be longer than min_speech_s")
        if self.queue_size < 1:
            raise InputError("queue_size must be >= 1")
        if self.backpressure not in ("auto", "drop-oldest", "block"):
            raise InputError(f"backpressure must be 'auto', 'drop-oldest' or 'block', got {self.backpressure!r}")
        if self.partial_every_s is not None and self.partial_every_s <= 0:
            raise InputError("partial_every_s must be positive")

    def resolved(self, live: bool) -> StreamOptions:
        """These options with ``backpressure="auto"`` made concrete for a ``live`` source or not."""
        if self.backpressure != "auto":
            return self
        return dataclasses.replace(self, backpressure="drop-oldest" if live else "block")

    @property
    def exit_threshold(self) -> float:
        return self.neg_threshold if self.neg_threshold is not None else max(0.01, self.threshold - 0.15)


@dataclass(frozen=True, eq=False)
class Utterance:
    """A piece of the stream: ``samples`` (16 kHz) from ``start_s`` to ``end_s`` of stream time.
    ``partial`` marks audio of an utterance still going on; ``split`` one cut at the maximum length;
    ``speech_end_s`` is where its speech ended (before the end padding; ``end_s`` when not given)."""

    start_s: float
    end_s: float
    samples: np.ndarray
    partial: bool = False
    split: bool = False
    detected_at: float = field(default_factory=time.perf_counter)
    speech_end_s: float | None = None

    def __post_init__(self) -> None:
        if self.speech_end_s is None:
            object.__setattr__(self, "speech_end_s", self.end_s)


class UtteranceDetector:
    """Feed 16 kHz audio of any chunk size; get the utterances it completes (see :class:`StreamOptions`)."""

    def __init__(self, vad: Callable[[np.ndarray], float], options: StreamOptions | None = None) -> None:
        self.vad = vad
        self.options = options or StreamOptions()
        o = self.options
        self._pad = int(o.pad_s * SAMPLE_RATE)
        self._min_silence = int(o.min_silence_s * SAMPLE_RATE)
        self._min_speech = int(o.min_speech_s * SAMPLE_RATE)
        self._max = int(o.max_utterance_s * SAMPLE_RATE)
        self._partial = int(o.partial_every_s * SAMPLE_RATE) if o.partial_every_s else None
        self._pending = np.zeros(0, dtype=np.float32)  # not yet a whole VAD chunk
        self._history = np.zeros(0, dtype=np.float32)  # recent audio, for the start padding
        self._pos = 0  # samples consumed by the VAD
        self._speech_start: int | None = None
        self._silence_since: int | None = None
        self._buffer: list[np.ndarray] = []
        self._buffer_start = 0
        self._last_partial = 0

    def feed(self, samples: np.ndarray) -> list[Utterance]:
        out: list[Utterance] = []
        self._pending = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32).reshape(-1)])
        n = self._pending.size // CHUNK
        for k in range(n):
            out += self._step(self._pending[k * CHUNK : (k + 1) * CHUNK])
        self._pending = self._pending[n * CHUNK :]
        return out

    def flush(self) -> list[Utterance]:
        """End of stream: the utterance in progress (if long enough) ends here."""
        if self._pending.size:
            out = self._step(np.concatenate([self._pending, np.zeros(CHUNK - self._pending.size, np.float32)]))
            self._pending = np.zeros(0, dtype=np.float32)
        else:
            out = []
        if self._speech_start is not None:
            out += self._close(self._pos, split=False)
        return out

    def skip(self, samples: int) -> list[Utterance]:
        """A gap of ``samples`` in the audio (dropped under load): the utterance in progress ends where the
        audio stopped, and the stream clock moves past the gap, so later times stay right."""
        padded = (CHUNK - self._pending.size) % CHUNK  # flush pads the last part-chunk with zeros
        out = self.flush()
        self._pos += samples - padded
        self._history = np.zeros(0, dtype=np.float32)
        if hasattr(self.vad, "reset"):
            self.vad.reset()
        return out

    def _step(self, chunk: np.ndarray) -> list[Utterance]:
        o, out = self.options, list[Utterance]()
        p = self.vad(chunk)
        start = self._pos
        self._pos += CHUNK
        if self._speech_start is None:
            self._history = np.concatenate([self._history, chunk])[-(self._pad + CHUNK) :]
            if p >= o.threshold:
                self._speech_start = start
                self._silence_since = None
                pre = self._history[: -CHUNK][-self._pad :] if self._pad else self._history[:0]
                self._buffer = [pre, chunk]
                self._buffer_start = start - pre.size
                self._last_partial = start
            return out
        self._buffer.append(chunk)
        if p < o.exit_threshold:
            if self._silence_since is None:
                self._silence_since = start
            if self._pos - self._silence_since >= self._min_silence:
                return self._close(self._silence_since, split=False)
        elif p >= o.threshold:
            self._silence_since = None
        if self._pos - self._buffer_start >= self._max:
            return self._close(self._pos, split=True)
        if self._partial and self._pos - self._last_partial >= self._partial:
            self._last_partial = self._pos
            audio = np.concatenate(self._buffer)
            out.append(Utterance(self._buffer_start / SAMPLE_RATE, self._pos / SAMPLE_RATE, audio, partial=True))
        return out

    def _close(self, speech_end: int, *, split: bool) -> list[Utterance]:
        assert self._speech_start is not None
        audio = np.concatenate(self._buffer)
        end = min(self._pos, speech_end + (0 if split else self._pad))
        audio = audio[: end - self._buffer_start]
        start_s = self._buffer_start / SAMPLE_RATE
        speech = speech_end - self._speech_start
        self._speech_start, self._silence_since, self._buffer = None, None, []
        self._history = audio[-self._pad :] if self._pad else audio[:0]
        if split:  # speech goes on: the next utterance starts right here
            self._speech_start = self._pos
            self._buffer, self._buffer_start, self._last_partial = [], self._pos, self._pos
        if speech < self._min_speech and not split:
            return []
        return [Utterance(start_s, end / SAMPLE_RATE, audio, split=split, speech_end_s=speech_end / SAMPLE_RATE)]


# ---- the loop ----

@dataclass(frozen=True)
class StreamResult:
    """One recognised utterance (or a partial one).

    Attributes:
        start_s / end_s: Where it lies in the stream.
        prediction: The :class:`edgeser.results.Prediction`, or ``None`` when recognition failed (``error``).
        latency_s: From the moment the detector closed the utterance (end of speech plus ``min_silence_s``)
            to the result.
        dropped_before: Utterances dropped under back-pressure since the previous result.
    """

    start_s: float
    end_s: float
    prediction: Prediction | None
    error: str | None
    partial: bool
    split: bool
    latency_s: float
    dropped_before: int

    def to_dict(self) -> dict[str, Any]:
        """Where the utterance lies and how it went (``start_s``, ``end_s``, ``partial``, ``split``, ``latency_s``,
        ``dropped_before``), then the prediction's own fields (:meth:`Prediction.to_dict`, as ``edgeser predict
        --json`` prints them), or ``error``: what ``edgeser listen --json`` prints and the service sends."""
        d: dict[str, Any] = {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                             "partial": self.partial, "split": self.split, "latency_s": round(self.latency_s, 4),
                             "dropped_before": self.dropped_before}
        if self.prediction is not None:  # the prediction as `edgeser predict --json` gives it: one shape everywhere
            d.update(self.prediction.to_dict())
        else:
            d["error"] = self.error
        return d


def guarded(recognize: Callable[[], Prediction], u: Utterance) -> tuple[Prediction | None, str | None]:
    """``(prediction, None)``, or ``(None, why)`` when recognising ``u`` fails: an ``EdgeserError``'s message, or
    any other exception's (logged with its traceback). A failure is that utterance's result; streams go on."""
    try:
        return recognize(), None
    except EdgeserError as e:
        return None, str(e)
    except Exception as e:
        log.exception("recognition failed on the utterance at %.2f-%.2f s", u.start_s, u.end_s)
        return None, f"recognition failed ({type(e).__name__}: {e})"


class AudioStream:
    """One audio stream, push-style: the caller feeds audio and owns the threads.

    ::

        s = recognizer.create_stream()
        s.accept_waveform(48_000, block)   # from the audio thread: resampling and voice activity detection
        while s.is_ready():                # utterances the detector has closed
            print(s.decode())              # recognise the oldest, in this thread -> StreamResult
        s.input_finished()                 # end of audio: the utterance in progress ends
        while (r := s.decode()) is not None: ...

    One thread feeds (``accept_waveform``, ``skip``, ``input_finished``); any threads take (``decode``, or
    ``pop`` to recognise elsewhere). At most ``options.queue_size`` utterances wait: with
    ``backpressure="drop-oldest"`` a new one then drops the oldest (counted, and reported in the next result's
    ``dropped_before``); with ``"block"`` none is dropped and the feeder paces itself with
    :meth:`wait_for_room`.

    Args:
        recognize: ``samples (16 kHz float32) -> Prediction``, used by :meth:`decode`; ``None`` when utterances
            are only taken with :meth:`pop`.
        options: How audio is cut into utterances and how many may wait (:class:`StreamOptions`).
        vad: Speech probability per 512-sample chunk (default: silero-vad).
    """

    def __init__(self, recognize: Callable[[np.ndarray], Prediction] | None = None,
                 options: StreamOptions | None = None, vad: Callable[[np.ndarray], float] | None = None) -> None:
        self.options = (options or StreamOptions()).resolved(live=True)
        self._recognize = recognize
        self._detector = UtteranceDetector(vad or SileroVad(), self.options)
        self._rate: int | None = None
        self._resample: Resampler | None = None
        self._accepted = 0  # 16 kHz samples accepted or skipped: the stream clock
        self._waiting: collections.deque[Utterance] = collections.deque()
        self._dropped = 0  # dropped since the last utterance taken
        self.dropped = 0  # dropped in all
        self._finished = self._closed = False
        self._cond = threading.Condition()

    # ---- feeding (one thread) ----
    def accept_waveform(self, sample_rate: int, samples: np.ndarray) -> None:
        """Mono samples at ``sample_rate`` (the same rate for the whole stream), any number at a time: float in
        [-1, 1], or integer PCM (int16, int32, uint8), scaled as :func:`edgeser.audio.pcm_to_float` scales it for
        ``predict``."""
        if self._finished:
            raise InputError("audio after input_finished(): create a new stream for new audio")
        if self._rate is None:
            if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or not 1000 <= sample_rate <= 384_000:
                raise InputError(f"sample_rate must be a whole number of Hz from 1000 to 384000, got {sample_rate!r}")
            self._rate, self._resample = sample_rate, Resampler(sample_rate, SAMPLE_RATE)
        elif sample_rate != self._rate:
            raise InputError(f"this stream's audio is at {self._rate} Hz, got a piece at {sample_rate} Hz: one "
                             "rate per stream")
        try:
            x = pcm_to_float(np.asarray(samples))
        except AudioError as e:
            raise InputError(str(e)) from None
        if x.ndim != 1:
            raise InputError(f"accept_waveform takes mono samples (one dimension), got shape {x.shape}")
        if not np.isfinite(x).all():
            raise InputError("the samples hold NaN or infinite values")
        assert self._resample is not None
        self._feed(self._resample(x))

    def skip(self, samples: int) -> None:
        """A gap of ``samples`` (at 16 kHz) missing from the audio: the utterance in progress ends where the
        audio stopped and the stream clock moves past the gap, so later times stay right."""
        self._queue(self._detector.skip(samples))
        self._accepted += samples

    def input_finished(self) -> None:
        """No more audio: the utterance in progress (if long enough) ends here."""
        if self._finished:
            return
        if self._resample is not None:
            self._feed(self._resample(np.zeros(0, np.float32), last=True))
        self._queue(self._detector.flush())
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def close(self) -> None:
        """Stop: waiting utterances are forgotten and takers get ``None`` (e.g. a consumer that has gone)."""
        with self._cond:
            self._finished = self._closed = True
            self._waiting.clear()
            self._cond.notify_all()

    def wait_for_room(self) -> None:
        """Block until fewer than ``queue_size`` utterances wait (``backpressure="block"`` feeders)."""
        with self._cond:
            while len(self._waiting) >= self.options.queue_size and not self._closed:
                self._cond.wait()

    @property
    def samples_accepted(self) -> int:
        """16 kHz samples accepted so far, skipped gaps included: the stream's clock."""
        return self._accepted

    def _feed(self, x: np.ndarray) -> None:
        self._accepted += x.size
        self._queue(self._detector.feed(x))

    def _queue(self, utterances: list[Utterance]) -> None:
        for u in utterances:
            old = None
            with self._cond:
                if self._closed:
                    return
                if self.options.backpressure == "drop-oldest" and len(self._waiting) >= self.options.queue_size:
                    old = self._waiting.popleft()
                    self._dropped += 1
                    self.dropped += 1
                self._waiting.append(u)
                self._cond.notify_all()
            if old is not None:
                log.warning("recognition is slower than real time: dropped the utterance at %.2f-%.2f s",
                            old.start_s, old.end_s)

    # ---- taking (any thread) ----
    def is_ready(self) -> bool:
        """Whether an utterance waits to be decoded."""
        with self._cond:
            return bool(self._waiting)

    @property
    def finished(self) -> bool:
        """Input has finished and nothing waits: :meth:`decode` and :meth:`pop` return ``None`` from now on."""
        with self._cond:
            return self._finished and not self._waiting

    def pop(self, timeout: float | None = 0.0) -> tuple[Utterance, int] | None:
        """The oldest waiting utterance and how many were dropped just before it, or ``None``: nothing came
        within ``timeout`` seconds (``None``: wait until one comes or input finishes; 0: do not wait)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._waiting or self._finished, timeout):
                return None
            if not self._waiting:
                return None
            u = self._waiting.popleft()
            dropped, self._dropped = self._dropped, 0
            self._cond.notify_all()
            return u, dropped

    def decode(self, timeout: float | None = None) -> StreamResult | None:
        """Recognise the oldest waiting utterance in this thread (waiting up to ``timeout`` seconds for one;
        ``None``: until one comes or input finishes). ``None`` when there is none. A failed recognition is
        that utterance's result (``error``), never an exception: the stream goes on."""
        if self._recognize is None:
            raise InputError("this stream was made without a recognizer: take utterances with pop()")
        item = self.pop(timeout)
        if item is None:
            return None
        u, dropped = item
        recognize = self._recognize
        pred, error = guarded(lambda: recognize(u.samples), u)
        return StreamResult(u.start_s, u.end_s, pred, error, u.partial, u.split,
                            time.perf_counter() - u.detected_at, dropped)


_DONE = object()


def stream(recognize: Callable[[np.ndarray], Any], source: Source, options: StreamOptions | None = None,
           vad: Callable[[np.ndarray], float] | None = None) -> Iterator[StreamResult]:
    """Detect utterances in ``source`` and recognise each with ``recognize(samples)`` in a worker thread: an
    :class:`AudioStream` fed from the caller's thread and decoded in the worker.

    With ``backpressure="drop-oldest"`` (the default for live sources) utterances beyond ``options.queue_size``
    drop the oldest (logged and counted); with ``"block"`` (the default for files read as fast as possible)
    reading waits for recognition. Results come out in order.
    """
    options = (options or StreamOptions()).resolved(source.live)
    audio = AudioStream(recognize, options, vad)
    results: queue.Queue[Any] = queue.Queue()

    def worker() -> None:
        try:
            while (r := audio.decode()) is not None:
                results.put(r)
        finally:  # the consumer waits for this marker: it must come whatever happened
            results.put(_DONE)

    def drain() -> Iterator[StreamResult]:
        while True:
            try:
                r = results.get_nowait()
            except queue.Empty:
                return
            if r is _DONE:
                results.put(_DONE)
                return
            yield r

    thread = threading.Thread(target=worker, name="edgeser-recognize", daemon=True)
    thread.start()
    try:
        for chunk in source.chunks:
            audio.accept_waveform(source.sample_rate, chunk)
            if options.backpressure == "block":
                audio.wait_for_room()
            yield from drain()
        audio.input_finished()
        while (r := results.get()) is not _DONE:
            yield r
    finally:  # also when the consumer stops early or the source fails: the worker ends, nothing is left behind
        audio.close()
        thread.join()
