"""Fuzz suites (hypothesis, bounded so that CI stays fast): audio arrays, audio files, transcripts and service
messages, against the shipped default. The invariant everywhere: a working result with finite probabilities, or
an EdgeserError; never another exception, a hang or a NaN. (Bundle manifests: tests/test_bundle_integrity.py.)"""

from __future__ import annotations

import io
import json
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgeser import EmotionRecognizer
from edgeser.errors import EdgeserError
from tests.conftest import SAMPLE
from tests.fuzzing import fuzz_settings, record

FUZZ = fuzz_settings(40)
REC = EmotionRecognizer.from_bundle("default")
WAVE, _ = sf.read(SAMPLE, dtype="float32")


def outcome(call: Any) -> str:
    """``"ok"`` for a prediction with finite probabilities over the labels, ``"refused"`` for an EdgeserError."""
    try:
        result = call()
    except EdgeserError as e:
        record(f"refused: {type(e).__name__}")
        return "refused"
    record("ok")
    probabilities = list(result.probabilities.values())
    assert len(probabilities) == len(REC.bundle.manifest.labels)
    assert all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in probabilities), probabilities
    assert abs(sum(probabilities) - 1.0) < 1e-3
    return "ok"


SHAPES = st.one_of(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6),
                   st.tuples(st.integers(0, 40_000)), st.tuples(st.integers(0, 40_000), st.integers(1, 3)),
                   st.tuples(st.integers(1, 3), st.integers(0, 40_000)))
DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int16, np.int32, np.uint8, np.int8, np.bool_,
                          np.complex64])


@FUZZ
@given(data=st.data(), shape=SHAPES, dtype=DTYPES, rate=st.one_of(st.none(), st.integers(-5, 400_000)))
def test_fuzzed_audio_arrays(data: st.DataObject, shape: tuple[int, ...], dtype: Any, rate: int | None) -> None:
    kind = data.draw(st.sampled_from(["noise", "speech", "constant", "special"]))
    n = int(np.prod(shape))
    if kind == "speech" and shape and shape[0] > 0:
        base = np.resize(WAVE, n)
    elif kind == "special":
        base = np.resize(np.array(data.draw(st.lists(st.sampled_from([0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e30,
                                                                      1e-30]), min_size=1, max_size=4))), n)
    elif kind == "constant":
        base = np.full(n, data.draw(st.floats(-2, 2)))
    else:
        base = np.random.default_rng(n).standard_normal(n) * 0.1
    with np.errstate(all="ignore"):
        array = (base.reshape(shape) * (1 if np.issubdtype(dtype, np.floating) else 20000)).astype(dtype)
    outcome(lambda: REC.predict(array, sample_rate=rate))


@FUZZ
@given(kind=st.sampled_from(["random", "truncated", "header", "empty", "wrong-extension"]),
       cut=st.integers(0, 20_000), seed=st.integers(0, 2**16))
def test_fuzzed_audio_files(tmp_path: Path, kind: str, cut: int, seed: int) -> None:
    good = io.BytesIO()
    sf.write(good, WAVE, 16000, format="WAV")
    raw = good.getvalue()
    rng = np.random.default_rng(seed)
    body = {"random": rng.bytes(cut), "truncated": raw[: min(cut, len(raw) - 1)],
            "header": raw[:44] + rng.bytes(cut), "empty": b"",
            "wrong-extension": raw}[kind]
    path = tmp_path / ("clip.flac" if kind == "wrong-extension" else "clip.wav")
    if kind != "wrong-extension":
        flipped = bytearray(body)
        for i in rng.integers(0, max(len(flipped), 1), size=min(8, len(flipped))):
            flipped[int(i)] ^= 0xFF
        body = bytes(flipped) if kind == "header" else body
    path.write_bytes(body)
    outcome(lambda: REC.predict(path))


TEXTS = st.one_of(st.text(max_size=60), st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
                  st.sampled_from(["version 1.2.3", "10.0.0.1", "3rd 4th 1999 1,000,000.5", "\ud800", "a" * 500,
                                   "   ", "...", "日本語", "don't'''", "\x00\x01", "é" * 40, "1" * 40]))


@FUZZ
@given(text=TEXTS, segments=st.booleans())
def test_fuzzed_transcripts(text: str, segments: bool) -> None:
    pytest.importorskip("hama")
    outcome(lambda: REC.predict(WAVE, text=text, sample_rate=16000, segments=segments))


MESSAGES = st.lists(st.one_of(
    st.binary(max_size=3000),
    st.text(max_size=40),
    st.builds(json.dumps, st.dictionaries(st.sampled_from(["sample_rate", "channels", "type", "x"]),
                                          st.one_of(st.integers(-10, 400_000), st.text(max_size=5), st.none(),
                                                    st.booleans(), st.floats(allow_nan=True), st.just("end")),
                                          max_size=3)),
    st.builds(json.dumps, st.one_of(st.integers(), st.lists(st.integers(), max_size=3), st.none()))),
    max_size=8)


@pytest.fixture(scope="module")
def service_url() -> Any:
    pytest.importorskip("websockets")
    from edgeser.audio.vad import EnergyVad
    from edgeser.serving.service import Service, ServiceConfig

    service = Service(REC, ServiceConfig(port=0, idle_timeout_s=5), vad=lambda: EnergyVad(-40))
    ready = threading.Event()
    thread = threading.Thread(target=service.serve, args=(ready,), daemon=True)
    thread.start()
    assert ready.wait(30)
    yield service, f"ws://127.0.0.1:{ready.server.socket.getsockname()[1]}"  # type: ignore[attr-defined]
    service.shutdown()
    thread.join(10)


def _is_end(message: Any) -> bool:
    if not isinstance(message, str):  # binary messages are audio
        return False
    try:
        data = json.loads(message)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("type") == "end"


@fuzz_settings(25)
@given(messages=MESSAGES)
@example(messages=['{"type": "end"}', b"\x00\x01" * 1500, "1600", b"\x00\x01" * 1500])  # ends while still sending
def test_fuzzed_service_messages(service_url: Any, messages: list[Any]) -> None:
    """Any mix of messages: every reply is JSON with a known type and finite numbers; the connection ends with
    ``end`` or a close code the protocol names; and the service serves the next client."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    _, url = service_url
    speech = (np.resize(WAVE, 16000 * 2) * 32767).astype("<i2").tobytes()
    replies: list[dict[str, Any]] = []
    code, reason = None, ""
    with connect(url) as ws:
        try:
            for m in [*messages, speech]:
                ws.send(m)
            ws.send(json.dumps({"type": "end"}))
            for raw in ws:
                assert not any(c in str(raw) for c in ("NaN", "Infinity")), raw  # JSON has no non-finite numbers
                replies.append(json.loads(raw))
        except ConnectionClosed as e:
            code, reason = (e.rcvd.code, e.rcvd.reason) if e.rcvd else (None, "")
    record(f"ended: {'end' if replies and replies[-1]['type'] == 'end' else code}")
    assert all(r["type"] in ("utterance", "error", "end") for r in replies)
    # a fuzzed {"type": "end"} ends the session early: the server may close (1000, "end") while the client is still
    # sending, before the client reads the server's end message
    ended_early = code == 1000 and reason == "end" and any(_is_end(m) for m in messages)
    assert (replies and replies[-1]["type"] == "end") or code in (1008, 1009) or ended_early, (replies[-3:], code)
    with connect(url) as ws:  # the next client is served
        ws.send(json.dumps({"type": "end"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "end"
