"""A local WebSocket service: other processes on the robot send PCM and receive one JSON result per utterance.

Protocol (one connection = one audio stream):

- client → server, optional first text message: ``{"sample_rate": 48000, "channels": 1}`` (default 16000, 1);
- client → server, binary messages: little-endian signed 16-bit PCM, any size;
- client → server, text message ``{"type": "end"}``: no more audio; the utterance in progress is finished;
- server → client, one text message per utterance: ``{"type": "utterance", "start_s", "end_s", "label",
  "probabilities", "transcript", "latency_s", "partial", "split", "dropped_before"}`` (or ``"error"`` in place
  of the prediction), times in seconds of the stream;
- server → client, last: ``{"type": "end", "utterances": N}``, then the server closes the connection.

It listens on 127.0.0.1 by default: it has no authentication, so do not expose it beyond the machine.
Needs ``websockets`` (``pip install "edgeser[stream]"``). Connections are served one thread each, all sharing
one recognizer (ONNX Runtime sessions may run concurrently).
"""

from __future__ import annotations

import json
import logging
import queue
from collections.abc import Iterator
from typing import Any

import numpy as np

from edgeser._optional import require
from edgeser.recognizer import EmotionRecognizer
from edgeser.speaker import RunningSpeaker
from edgeser.streaming import SAMPLE_RATE, PcmDecoder, Source, StreamOptions

log = logging.getLogger(__name__)


def _audio_chunks(messages: queue.Queue[Any], config: dict[str, int]) -> Iterator[np.ndarray]:
    """PCM messages → float32 16 kHz chunks, until ``None`` (the format is read when the first audio comes)."""
    decode: PcmDecoder | None = None
    while True:
        data = messages.get()
        if decode is None:
            decode = PcmDecoder(config.get("sample_rate", SAMPLE_RATE), config.get("channels", 1))
        x = decode(data or b"", last=data is None)
        if x.size:
            yield x
        if data is None:
            return


def handle(connection: Any, rec: EmotionRecognizer, options: StreamOptions,
           adapt_speaker_s: float | None = None) -> None:
    """Serve one connection (see the module docstring); with ``adapt_speaker_s``, the connection's speaker is
    learnt as it goes (:class:`edgeser.speaker.RunningSpeaker`, used after that many seconds of speech)."""
    import threading

    messages: queue.Queue[Any] = queue.Queue(maxsize=256)
    config: dict[str, int] = {}
    count = [0]

    def recognise() -> None:
        source = Source(_audio_chunks(messages, config), live=True, name="websocket")
        speaker = RunningSpeaker(adapt_speaker_s) if adapt_speaker_s is not None else None
        for result in rec.stream(source, options, speaker=speaker):
            connection.send(json.dumps({"type": "utterance", **result.to_dict()}, ensure_ascii=False))
            count[0] += 1

    worker = threading.Thread(target=recognise, name="edgeser-ws", daemon=True)
    worker.start()
    try:
        for message in connection:
            if isinstance(message, bytes):
                messages.put(message)
                continue
            try:
                data = json.loads(message)
            except json.JSONDecodeError:
                connection.send(json.dumps({"type": "error", "error": "text messages must be JSON"}))
                continue
            if data.get("type") == "end":
                break
            if "sample_rate" in data or "channels" in data:
                config.update({k: int(data[k]) for k in ("sample_rate", "channels") if k in data})
    finally:
        messages.put(None)
        worker.join()
    connection.send(json.dumps({"type": "end", "utterances": count[0]}))
    connection.close()


def serve(rec: EmotionRecognizer, host: str = "127.0.0.1", port: int = 8765,
          options: StreamOptions | None = None, ready: Any = None, adapt_speaker_s: float | None = None) -> None:
    """Run the service until interrupted. ``ready`` (a ``threading.Event``) is set once it listens."""
    require("websockets", "stream", "the WebSocket service")
    from websockets.sync.server import serve as ws_serve

    options = options or StreamOptions()
    with ws_serve(lambda c: handle(c, rec, options, adapt_speaker_s), host, port, max_size=2**22) as server:
        if ready is not None:
            ready.server = server
            ready.set()
        server.serve_forever()
