"""A local WebSocket service: other processes on the robot send PCM and receive one JSON result per utterance.

Protocol (one connection = one audio stream):

- client → server, optional first text message: ``{"sample_rate": 48000, "channels": 1}`` (default 16000, 1;
  rates 8000-192000 Hz, 1-8 channels; anything else is answered with an ``error`` message and the connection
  is closed with code 1008, since the audio that follows could not be read right); it may add
  ``"backpressure": "block"`` (default ``"drop-oldest"``): a client sending a file faster than real time is then
  read only as fast as its audio is recognised (TCP holds the rest back), so nothing of it is dropped;
- client → server, binary messages: little-endian signed 16-bit PCM, any size up to
  :attr:`ServiceConfig.max_message_bytes` (a larger message closes the connection with code 1009);
- client → server, text message ``{"type": "end"}``: no more audio; the utterance in progress is finished;
- server → client, one text message per utterance: ``{"type": "utterance", "start_s", "end_s", "latency_s",
  "partial", "split", "dropped_before"}`` and the prediction's fields as ``edgeser predict --json`` gives them
  (``label``, ``probabilities``, ``transcript``, ``voiced_s``, ``timings``, ...; :meth:`Prediction.to_dict`), or
  ``"error"`` in place of the prediction; times in seconds of the stream, ``latency_s`` from the moment the audio
  of the end of speech reached the server to the moment its result was sent (so it includes the silence the
  detector waits for, ``min_silence_s``, and any queueing);
- server → client, ``{"type": "error", "error": ...}`` for a text message it cannot use (the connection goes on);
- server → client, last: ``{"type": "end", "utterances": N, "dropped": D, "audio_dropped_s": S}``, then the
  server closes the connection (code 1000, reason ``end``; a client still sending after its ``end`` may see
  that close before it reads the ``end`` message). Every utterance the detector found is either among the N
  results sent before it or counted in D (those still unanswered :attr:`ServiceConfig.end_wait_s` after the
  ``end`` included); audio dropped before the detector heard it (over ``max_pending_s``) is counted in S
  seconds, since no one can tell how many utterances it held.

What keeps it up when left running (:class:`ServiceConfig`):

- one recognizer for every connection, warmed up once, with one recognition worker behind a queue of
  ``queue_size`` utterances shared by all connections: when recognition falls behind, the oldest waiting
  utterance is dropped and counted in its connection's next result (``dropped_before``) and in its ``end``;
  connections are never closed for being slow;
- each connection's reader only decodes and buffers (at most ``max_pending_s`` of audio waiting for the voice
  activity detector; beyond that its oldest audio is dropped and counted, and stream times stay right), so it
  always keeps reading and answers keepalive pings;
- bounded: ``max_connections`` (more are refused with HTTP 503), ``max_message_bytes``, ``idle_timeout_s``
  (a connection that sends nothing for that long is closed, code 1000);
- SIGINT / SIGTERM stop it cleanly: connections get close code 1001, threads end, :func:`serve` returns.

Security: it listens on 127.0.0.1 by default. A web page open in a browser on the same machine could reach a
local port, so a request that carries an ``Origin`` header (browsers always send one; other clients do not)
is refused with HTTP 403 unless that origin is listed in ``origins``; with ``token`` set, every connection must
send ``Authorization: Bearer <token>`` (or ``?token=<token>`` in the URL), else HTTP 401.

Needs ``websockets`` (``pip install "edgeser[stream]"``).
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import functools
import hmac
import http
import json
import logging
import signal
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeser._optional import require
from edgeser.audio import SAMPLE_RATE
from edgeser.audio.vad import SileroVad
from edgeser.errors import EdgeserError
from edgeser.serving.config import CONFIG_KEYS as CONFIG_KEYS
from edgeser.serving.config import MAX_CHANNELS as MAX_CHANNELS
from edgeser.serving.config import SAMPLE_RATES as SAMPLE_RATES
from edgeser.serving.config import ServiceConfig as ServiceConfig
from edgeser.serving.config import audio_format as audio_format
from edgeser.speaker import RunningSpeaker, SpeakerProfile
from edgeser.streaming import (
    AudioStream,
    PcmDecoder,
    StreamResult,
    Utterance,
    guarded,
)

log = logging.getLogger(__name__)

class ServiceError(EdgeserError):
    """The service cannot start (a port in use, a bad setting), or its listening socket failed."""


SHORTAGE = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
"""accept() errors that pass: the process (or system) is out of descriptors or buffers for now."""


class _PatientSocket:
    """The listening socket, whose ``accept()`` waits out a shortage of file descriptors (:data:`SHORTAGE`: too
    many connections and handshakes at once under a low ``ulimit -n``) instead of failing, which would end
    websockets' ``serve_forever`` and with it the service; other errors (the socket closed by shutdown) pass on."""

    def __init__(self, sock: Any, backoff_s: float = 0.1) -> None:
        self._sock, self._backoff_s = sock, backoff_s
        self.shortages, self._warned = 0, 0.0
        self.failed: OSError | None = None  # an error of the open socket (not the close that shutdown makes)

    def accept(self) -> Any:
        while True:
            try:
                return self._sock.accept()
            except OSError as e:
                if e.errno not in SHORTAGE:
                    if self._sock.fileno() != -1:
                        self.failed = e
                    raise
                self.shortages += 1
                if time.monotonic() - self._warned > 10:
                    self._warned = time.monotonic()
                    log.warning("cannot accept a connection (%s): new connections wait until descriptors free up; "
                                "raise the limit (ulimit -n, systemd LimitNOFILE=) or lower --max-connections",
                                e.strerror)
                time.sleep(self._backoff_s)  # the pending connection stays in the backlog; shutdown still works

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _closed(connection: Any) -> bool:
    """Whether a websockets connection has closed (a handshake that failed after :meth:`Service.process_request`
    let it through never reaches :meth:`Service.handle`)."""
    from websockets.protocol import State

    return bool(getattr(connection, "state", None) == State.CLOSED)


class _AudioBuffer:
    """16 kHz chunks waiting for a connection's detector, with their arrival times; at most ``limit`` samples
    (the oldest chunks are dropped and counted). ``None`` from :meth:`get` means the connection has ended."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._chunks: collections.deque[tuple[np.ndarray, float]] = collections.deque()
        self._samples = 0
        self._dropped = 0  # samples dropped since the detector last took a chunk
        self._closed = False
        self._ready = threading.Condition()

    def put(self, chunk: np.ndarray, arrived: float, block: bool = False) -> None:
        """Add a chunk; over the limit the oldest are dropped, or (``block``) this waits for room instead."""
        with self._ready:
            while block and self._chunks and self._samples + chunk.size > self.limit and not self._closed:
                self._ready.wait()
            self._chunks.append((chunk, arrived))
            self._samples += chunk.size
            while self._samples > self.limit and len(self._chunks) > 1:
                old, _ = self._chunks.popleft()
                self._samples -= old.size
                self._dropped += old.size
            self._ready.notify()

    def close(self, discard: bool = False) -> None:
        """No more audio; ``discard`` also forgets what is waiting (a connection that has gone: its results
        could not be sent, and working through its backlog would only slow the others)."""
        with self._ready:
            self._closed = True
            if discard:
                self._chunks.clear()
                self._samples = 0
            self._ready.notify_all()

    def get(self) -> tuple[np.ndarray, float, int] | None:
        """The oldest chunk, its arrival time, and how many samples were dropped just before it."""
        with self._ready:
            while not self._chunks and not self._closed:
                self._ready.wait()
            if not self._chunks:
                return None
            chunk, arrived = self._chunks.popleft()
            self._samples -= chunk.size
            self._ready.notify_all()  # a blocked put may go on
            dropped, self._dropped = self._dropped, 0
            return chunk, arrived, dropped


@dataclass(eq=False)
class _Job:
    session: _Session
    utterance: Utterance
    speech_end_arrived: float  # when the audio of the end of speech reached the server


class _Session:
    """One connection: its decoder, buffer, detector thread and counters."""

    def __init__(self, service: Service, connection: Any) -> None:
        self.service, self.connection = service, connection
        config = service.config
        self.buffer = _AudioBuffer(int(config.max_pending_s * SAMPLE_RATE))
        self.decoder: PcmDecoder | None = None
        self.speaker: SpeakerProfile | RunningSpeaker | None = (
            config.profile if config.profile is not None
            else RunningSpeaker(config.adapt_speaker_s) if config.adapt_speaker_s is not None else None)
        self.sent = self.dropped = self.dropped_since_sent = self.audio_dropped = 0
        self.block = False  # the client asked for "backpressure": "block"
        self.outstanding = 0  # utterances submitted and neither sent nor dropped
        self.open = True
        self.lock = threading.Condition()
        self.sending = threading.Lock()  # results and the end message, in order: none is sent after "end"
        self._arrivals: collections.deque[tuple[int, float]] = collections.deque()  # (samples received, time)
        self.detector_thread = threading.Thread(target=self._detect, name="edgeser-ws-vad", daemon=True)

    def audio(self, data: bytes, arrived: float) -> int:
        """Decode and buffer one message; returns the 16 kHz samples it held."""
        if self.decoder is None:
            self.decoder = PcmDecoder(SAMPLE_RATE, 1)
        x = self.decoder(data)
        if x.size:
            self.buffer.put(x, arrived, block=self.block)
        return int(x.size)

    def finish_audio(self, discard: bool = False) -> None:
        if discard:
            self.open = False  # its waiting utterances are dropped by the worker, not recognised
            self.buffer.close(discard=True)
            return
        if self.decoder is not None:
            x = self.decoder(b"", last=True)
            if x.size:
                self.buffer.put(x, time.perf_counter())
        self.buffer.close()

    def _detect(self) -> None:
        """The detector thread: the connection's :class:`AudioStream` over the buffered audio; each utterance it
        closes goes at once to the shared recognition queue, where overload drops (the stream's own queue is
        only a hand-over, so it never drops: ``backpressure="block"``, and it is emptied after every piece)."""
        audio = AudioStream(None, dataclasses.replace(self.service.config.stream, backpressure="block"),
                            self.service.vad())
        try:
            while (item := self.buffer.get()) is not None:
                chunk, arrived, dropped = item
                if dropped:  # a gap in the audio: close what was going on, move the clock past it
                    with self.lock:
                        self.audio_dropped += dropped
                    audio.skip(dropped)
                    self._hand_over(audio)
                # no utterance can end earlier than the silence the detector waits for (plus a margin): forget
                # older arrivals, so that hours of silence keep the record small
                received = audio.samples_accepted + chunk.size
                self._arrivals.append((received, arrived))
                horizon = received - int((self.service.config.stream.min_silence_s + 2.0) * SAMPLE_RATE)
                while len(self._arrivals) > 1 and self._arrivals[1][0] < horizon:
                    self._arrivals.popleft()
                audio.accept_waveform(SAMPLE_RATE, chunk)
                self._hand_over(audio)
            if self.open:  # a connection that has gone gets no last utterance
                audio.input_finished()
                self._hand_over(audio)
        except Exception:  # never silent: the connection is told and closed
            log.exception("voice activity detection failed")
            self.send({"type": "error", "error": "voice activity detection failed; see the server log"})
            self.connection.close(1011, "voice activity detection failed")

    def _hand_over(self, audio: AudioStream) -> None:
        while (item := audio.pop()) is not None:
            self._submit(item[0])

    def _submit(self, u: Utterance) -> None:
        end = round((u.speech_end_s if u.speech_end_s is not None else u.end_s) * SAMPLE_RATE)
        while len(self._arrivals) > 1 and self._arrivals[0][0] < end:
            self._arrivals.popleft()
        arrived = self._arrivals[0][1] if self._arrivals else time.perf_counter()
        with self.lock:
            while self.block and self.outstanding > 0 and self.open:  # one at a time: the shared queue never drops it
                self.lock.wait(1.0)
            self.outstanding += 1
        self.service.submit(_Job(self, u, arrived))

    def dropped_job(self) -> None:
        with self.lock:
            self.dropped += 1
            self.dropped_since_sent += 1
            self.outstanding -= 1
            self.lock.notify_all()

    def deliver(self, job: _Job, prediction: Any, error: str | None) -> float | None:
        """Send one result; returns its latency (``None`` when it was not sent: the connection has gone, or has
        ended and counted this utterance as dropped in its ``end`` message)."""
        u = job.utterance
        with self.sending:
            ok, latency = self.open, time.perf_counter() - job.speech_end_arrived
            if ok:
                with self.lock:
                    before, self.dropped_since_sent = self.dropped_since_sent, 0
                result = StreamResult(u.start_s, u.end_s, prediction, error, u.partial, u.split, latency, before)
                ok = self.send({"type": "utterance", **result.to_dict()})
            with self.lock:
                self.sent += ok
                self.outstanding -= 1
                self.lock.notify_all()
        return latency if ok else None

    def end(self, wait_s: float) -> None:
        """After the client's ``end``: wait up to ``wait_s`` for its utterances, then send the ``end`` message,
        counting those still waiting or being recognised as dropped (they will not be sent)."""
        self.wait_until_done(wait_s)
        with self.sending:
            with self.lock:
                self.open = False
                unanswered = self.outstanding
            self.send({"type": "end", "utterances": self.sent, "dropped": self.dropped + unanswered,
                       "audio_dropped_s": round(self.audio_dropped / SAMPLE_RATE, 3)})

    def send(self, message: dict[str, Any]) -> bool:
        from websockets.exceptions import ConnectionClosed

        try:
            self.connection.send(json.dumps(message, ensure_ascii=False, allow_nan=False))
            return True
        except ConnectionClosed:
            self.open = False
            return False

    def wait_until_done(self, timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        with self.lock:
            while self.outstanding > 0 and self.open and (left := deadline - time.perf_counter()) > 0:
                self.lock.wait(left)


class Service:
    """The service's state: the recognizer, one recognition worker and its queue, the connections, counters.

    ``recognizer`` needs ``predict(samples, sample_rate=16000, speaker=..., check_speech=False)`` and ``warm_up()`` (an
    :class:`edgeser.EmotionRecognizer`); ``vad`` makes one voice activity detector per connection (by default
    silero-vad, every connection's state on one shared session).
    """

    def __init__(self, recognizer: Any, config: ServiceConfig | None = None,
                 vad: Callable[[], Callable[[np.ndarray], float]] = SileroVad.shared) -> None:
        self.recognizer, self.config, self.vad = recognizer, config or ServiceConfig(), vad
        self._jobs: collections.deque[_Job] = collections.deque()
        self._ready = threading.Condition()
        self._stopping = False
        self._sessions: set[_Session] = set()
        self._reserved: set[Any] = set()  # connections let through the handshake, not yet in handle()
        self._sessions_lock = threading.Lock()
        self.counts = {"connections": 0, "refused": 0, "utterances": 0, "dropped": 0, "errors": 0}
        self._dropped_unreported, self._last_drop_warning = 0, -float("inf")
        self._count_lock = threading.Lock()
        self.latencies: collections.deque[float] = collections.deque(maxlen=100_000)
        self._worker = threading.Thread(target=self._recognise, name="edgeser-ws-recognise", daemon=True)

    def _count(self, key: str, n: int = 1) -> None:
        with self._count_lock:
            self.counts[key] += n

    # ---- recognition: one worker, a bounded queue shared by all connections ----
    def submit(self, job: _Job) -> None:
        dropped = None
        with self._ready:
            if len(self._jobs) >= self.config.queue_size:
                dropped = self._jobs.popleft()
            self._jobs.append(job)
            self._ready.notify()
        if dropped is not None:
            self._count("dropped")
            self._warn_dropped()
            dropped.session.dropped_job()

    DROP_WARNING_EVERY_S = 10.0
    """Under overload, one warning per this many seconds says how many utterances were dropped (one per drop
    was thousands of lines a minute at 128 clients)."""

    def _warn_dropped(self) -> None:
        now = time.monotonic()
        with self._count_lock:
            self._dropped_unreported += 1
            if now - self._last_drop_warning < self.DROP_WARNING_EVERY_S:
                return
            n, total = self._dropped_unreported, self.counts["dropped"]
            self._dropped_unreported, self._last_drop_warning = 0, now
        log.warning("recognition is behind: dropped %d utterance(s) since the last warning (%d in all); each "
                    "connection is told in its next result", n, total)

    def _recognise(self) -> None:
        while True:
            with self._ready:
                while not self._jobs and not self._stopping:
                    self._ready.wait()
                if not self._jobs:
                    return
                job = self._jobs.popleft()
            if not job.session.open:  # ended (its end message counted this one) or gone
                self._count("dropped")
                job.session.dropped_job()
                continue
            prediction, error = guarded(functools.partial(self.recognizer.predict, job.utterance.samples,
                                                          sample_rate=SAMPLE_RATE, speaker=job.session.speaker,
                                                          check_speech=False),
                                        job.utterance)
            self._count("errors", error is not None)
            latency = job.session.deliver(job, prediction, error)
            if latency is not None:
                self._count("utterances")
                self.latencies.append(latency)
            else:
                self._count("dropped")

    # ---- connections ----
    def process_request(self, connection: Any, request: Any) -> Any:
        """The opening handshake: refuse a missing token (401) and a connection over the limit (503)."""
        if self.config.token is not None:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query).get("token", [""])[0]
            if not any(hmac.compare_digest(t.encode(), self.config.token.encode()) for t in (given, query) if t):
                self._count("refused")
                return connection.respond(http.HTTPStatus.UNAUTHORIZED, "a valid token is needed\n")
        with self._sessions_lock:  # a slot is taken here, in the same lock as the count, so no two take the last
            self._reserved = {c for c in self._reserved if not _closed(c)}  # handshakes that failed after this
            busy = len(self._sessions) + len(self._reserved) >= self.config.max_connections
            if not busy:
                self._reserved.add(connection)
        if busy:
            self._count("refused")
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE,
                                      f"busy: {self.config.max_connections} connections already\n")
        return None

    def handle(self, connection: Any) -> None:
        """Serve one connection (see the module docstring)."""
        session = _Session(self, connection)
        with self._sessions_lock:
            self._reserved.discard(connection)
            self._sessions.add(session)
        self._count("connections")
        session.detector_thread.start()
        ended = False
        try:
            ended = self._read(session)
        finally:
            session.finish_audio(discard=not ended)
            session.detector_thread.join()
            if ended:
                session.end(self.config.end_wait_s)
                self._close(connection, 1000, "end")
            session.open = False
            with self._sessions_lock:
                self._sessions.discard(session)

    def _read(self, session: _Session) -> bool:
        """Read messages until the client's ``end`` (True) or the connection goes (False)."""
        from websockets.exceptions import ConnectionClosed

        connection, audio_seen = session.connection, False
        window_start, window_audio_s = time.perf_counter(), 0.0
        while True:
            now = time.perf_counter()
            if now - window_start >= self.config.idle_timeout_s:
                elapsed = now - window_start
                if window_audio_s < self.config.min_audio_share * elapsed:
                    session.send({"type": "error", "error": f"{window_audio_s:.1f} s of audio in {elapsed:.0f} s "
                                                            f"(under {self.config.min_audio_share:.0%} of real time):"
                                                            " closing, to free the slot for a stream"})
                    self._close(connection, 1008, "too little audio")
                    return False
                window_start, window_audio_s = now, 0.0
            try:
                message = connection.recv(timeout=self.config.idle_timeout_s)
            except TimeoutError:
                session.send({"type": "error", "error": f"nothing received for {self.config.idle_timeout_s:g} s: "
                                                        "closing (send {\"type\": \"end\"} when done)"})
                self._close(connection, 1000, "idle")
                return False
            except ConnectionClosed:
                return False
            if isinstance(message, bytes):
                audio_seen = True
                window_audio_s += session.audio(message, time.perf_counter()) / SAMPLE_RATE
                continue
            try:
                data = json.loads(message)
            except (ValueError, RecursionError):  # RecursionError: brackets nested deeper than Python recurses
                data = None
            if not isinstance(data, dict):
                session.send({"type": "error", "error": 'text messages must be JSON objects: {"sample_rate": '
                                                        '16000, "channels": 1} before the audio, or {"type": "end"}'})
                continue
            if data.get("type") == "end":
                return True
            if any(k in data for k in CONFIG_KEYS):
                if audio_seen:
                    session.send({"type": "error", "error": "the audio format must come before the first audio; "
                                                            "ignored"})
                    continue
                try:
                    rate, channels = audio_format(data)
                except ValueError as e:
                    session.send({"type": "error", "error": str(e)})
                    self._close(connection, 1008, "bad audio format")
                    return False
                session.decoder = PcmDecoder(rate, channels)
                session.block = data.get("backpressure") == "block"
                continue
            session.send({"type": "error", "error": f"unknown message {sorted(data)}: expected sample_rate / "
                                                    "channels / backpressure, or type end"})

    def _close(self, connection: Any, code: int, reason: str) -> None:
        """Close, reading (and dropping) what the client still sends until it answers: a reader that stops
        reading lets the incoming queue fill, and the client's close frame then waits behind it (10 s)."""
        from websockets.exceptions import ConnectionClosed

        closer = threading.Thread(target=connection.close, args=(code, reason), daemon=True)
        closer.start()
        try:
            while closer.is_alive():
                connection.recv(timeout=1.0)
        except (ConnectionClosed, TimeoutError):
            pass
        closer.join()

    def stats(self) -> dict[str, Any]:
        with self._sessions_lock:
            active = len(self._sessions)
        with self._count_lock:
            counts = dict(self.counts)
        return {**counts, "active": active, "queued": len(self._jobs)}

    # ---- the server ----
    def serve(self, ready: threading.Event | None = None) -> None:
        """Listen until :meth:`shutdown` (SIGINT / SIGTERM when run in the main thread). ``ready`` is set once
        it listens, with the server as ``ready.server``."""
        require("websockets", "stream", "the WebSocket service")
        from websockets.sync.server import serve as ws_serve
        from websockets.typing import Origin

        if self.config.profile is not None:  # refused before listening, not on every utterance
            self.recognizer.check_profile(self.config.profile)
        self.recognizer.warm_up()  # once for every connection
        self._worker.start()
        try:
            server = ws_serve(self.handle, self.config.host, self.config.port,
                              origins=[None, *(Origin(o) for o in self.config.origins)],
                              process_request=self.process_request,
                              max_size=self.config.max_message_bytes, max_queue=4, compression=None)
        except OSError as e:
            self.stop()
            raise ServiceError(f"cannot listen on {self.config.host}:{self.config.port} ({e.strerror or e}): "
                               "choose another --port, or stop what holds it") from e
        self._server = server
        server.socket = listening = _PatientSocket(server.socket)  # type: ignore[assignment]
        restore = _on_signals(lambda: threading.Thread(target=server.shutdown, daemon=True).start())
        try:
            with server:
                if ready is not None:
                    ready.server = server  # type: ignore[attr-defined]
                    ready.set()
                server.serve_forever()
        finally:
            restore()
            self.stop()
        if listening.failed is not None:  # serve_forever also returns when accept() fails for good
            raise ServiceError(f"the listening socket on {self.config.host}:{self.config.port} failed "
                               f"({listening.failed.strerror or listening.failed}); the service stopped")

    def shutdown(self) -> None:
        self._server.shutdown()

    def stop(self) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify_all()
        if self._worker.is_alive():
            self._worker.join()


def _on_signals(handler: Callable[[], None]) -> Callable[[], None]:
    """Run ``handler`` on SIGINT and SIGTERM (main thread only); returns what puts the old handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {s: signal.signal(s, lambda *_: handler()) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return restore


def serve(recognizer: Any, config: ServiceConfig | None = None, ready: threading.Event | None = None) -> None:
    """Run the service until SIGINT / SIGTERM (or ``ready.server.shutdown()``); see :class:`Service`."""
    Service(recognizer, config).serve(ready)
