"""What the WebSocket service (:mod:`edgeser.serving.service`) accepts: its limits and access
(:class:`ServiceConfig`, each checked when made) and a client's configuration message (:func:`audio_format`)."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from edgeser.audio import SAMPLE_RATE
from edgeser.errors import InputError
from edgeser.speaker import SpeakerProfile
from edgeser.streaming import StreamOptions

SAMPLE_RATES = (8_000, 192_000)
MAX_CHANNELS = 8


@dataclass(frozen=True)
class ServiceConfig:
    """Limits and access of :func:`edgeser.serving.service.serve` (each checked when made; see that module's docstring).

    Attributes:
        host / port: Where to listen (port 0: any free port).
        max_connections: Connections served at once; more are refused with HTTP 503.
        idle_timeout_s: A connection that sends nothing for this long is closed.
        min_audio_share: A connection whose audio, over any ``idle_timeout_s`` window, covers less than this share
            of that window is closed (code 1008): a slot is for a stream, and a trickle of tiny messages would
            otherwise hold one for ever. 0 turns it off.
        max_message_bytes: Largest message accepted (1 MiB: 32 s of 16 kHz mono PCM).
        max_pending_s: Audio of one connection waiting for its voice activity detector; older audio is dropped.
        queue_size: Utterances waiting for recognition, all connections together; the oldest is dropped.
        end_wait_s: After a client's ``end``, how long its utterances still waiting or being recognised are
            awaited; those not answered by then are dropped and counted in the ``end`` message.
        origins: Browser origins allowed (e.g. ``"http://localhost:3000"``); requests without an ``Origin``
            header (any non-browser client) are always allowed.
        token: When set, the bearer token every connection must present.
        adapt_speaker_s: Learn each connection's speaker, used after this many seconds of its speech
            (:class:`edgeser.speaker.RunningSpeaker`).
        profile: A site's (or one speaker's) profile from ``edgeser enroll --site`` that every connection is
            predicted with (:class:`edgeser.speaker.SpeakerProfile`); not with ``adapt_speaker_s``.
        stream: How each connection's audio is cut into utterances.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    max_connections: int = 32
    idle_timeout_s: float = 60.0
    min_audio_share: float = 0.1
    max_message_bytes: int = 1 << 20
    max_pending_s: float = 10.0
    queue_size: int = 8
    end_wait_s: float = 30.0
    origins: tuple[str, ...] = ()
    token: str | None = None
    adapt_speaker_s: float | None = None
    profile: SpeakerProfile | None = None
    stream: StreamOptions = field(default_factory=lambda: StreamOptions(backpressure="drop-oldest"))

    def __post_init__(self) -> None:
        checks = [(0 <= self.port <= 65535, f"port must be 0-65535, got {self.port}"),
                  (self.max_connections >= 1, f"max_connections must be >= 1, got {self.max_connections}"),
                  (self.idle_timeout_s > 0, f"idle_timeout_s must be positive, got {self.idle_timeout_s}"),
                  (0 <= self.min_audio_share <= 1, f"min_audio_share must be in [0, 1], got {self.min_audio_share}"),
                  (1024 <= self.max_message_bytes <= 64 << 20,
                   f"max_message_bytes must be 1 KiB-64 MiB, got {self.max_message_bytes}"),
                  (0 < self.max_pending_s <= 600, f"max_pending_s must be in (0, 600], got {self.max_pending_s}"),
                  (self.queue_size >= 1, f"queue_size must be >= 1, got {self.queue_size}"),
                  (0 < self.end_wait_s <= 600, f"end_wait_s must be in (0, 600], got {self.end_wait_s}"),
                  (self.token is None or len(self.token) >= 16,
                   "token must be at least 16 characters (e.g. from `python -c 'import secrets; "
                   "print(secrets.token_urlsafe())'`)"),
                  (self.adapt_speaker_s is None or self.adapt_speaker_s > 0, "adapt_speaker_s must be positive"),
                  (self.adapt_speaker_s is None or self.profile is None,
                   "give a profile or adapt_speaker_s (learn it from the stream), not both")]
        for ok, message in checks:
            if not ok:
                raise InputError(message)
        for origin in self.origins:
            parts = urllib.parse.urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
                raise InputError(f"origin {origin!r} must be a scheme and host, such as http://localhost:3000")


CONFIG_KEYS = ("sample_rate", "channels", "backpressure")
"""What a configuration message may hold."""


def audio_format(message: dict[str, Any]) -> tuple[int, int]:
    """``(sample_rate, channels)`` of a configuration message; ValueError saying what is allowed."""
    rate, channels = message.get("sample_rate", SAMPLE_RATE), message.get("channels", 1)
    for name, value, low, high in (("sample_rate", rate, *SAMPLE_RATES), ("channels", channels, 1, MAX_CHANNELS)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InputError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    if message.get("backpressure", "drop-oldest") not in ("drop-oldest", "block"):
        raise InputError(f"backpressure must be 'drop-oldest' or 'block', got {message['backpressure']!r}")
    return rate, channels
