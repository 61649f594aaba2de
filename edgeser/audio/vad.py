"""Voice activity: silero-vad's speech probability per 32 ms, and which encoder frames hold speech.

The one place speech is told from silence: the stream detector (:mod:`edgeser.streaming`) cuts utterances with
:class:`SileroVad`; :func:`voicing` runs it once over a whole utterance; :meth:`Voicing.span` is the stretch the
speech encoder hears and :meth:`Voicing.frame_mask` puts the verdict on the encoder's frame grid, so that a head
pools statistics over speech, not over the silence around it (a feature that changes when silence is added to a
file is a bug). ``predict``, ``listen``, ``serve``, ``batch``, Triton, training and calibration all take their
frame masks from here.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeser.audio import SAMPLE_RATE
from edgeser.errors import BackendError, BackendUnavailableError, InputError
from edgeser.model.specs import FrameFormula

CHUNK = 512  # silero-vad's window at 16 kHz: 32 ms
_CONTEXT = 64
_RATE = np.array(SAMPLE_RATE, dtype=np.int64)


SILERO_MODEL = Path(__file__).parents[1] / "models" / "vad" / "silero_vad.onnx"
"""silero-vad 6.2.3's ONNX model (MIT, Silero Team; its licence beside it), shipped with edgeser so that voice
activity detection needs nothing but ONNX Runtime (the ``silero-vad`` package declares torch)."""
SILERO_SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"


def silero_model_path() -> Path:
    """The shipped silero-vad model, checked against its sha256 (once per process)."""
    return _checked_silero()


@functools.lru_cache(maxsize=1)
def _checked_silero() -> Path:
    from edgeser.model.bundle import sha256_file

    if not SILERO_MODEL.is_file():
        raise BackendUnavailableError(f"{SILERO_MODEL}: missing; this edgeser was installed without its voice "
                                      "activity model (reinstall it)")
    if sha256_file(SILERO_MODEL) != SILERO_SHA256:
        raise BackendUnavailableError(f"{SILERO_MODEL}: not the silero-vad model this edgeser ships (sha256 "
                                      "differs); reinstall edgeser")
    return SILERO_MODEL


class SileroVad:
    """Speech probability of each 512-sample (32 ms) chunk of 16 kHz audio, keeping the model's state.

    The state lives in this object and is passed to the model on every call, so one ONNX Runtime session can
    serve many detectors at once (sessions run concurrently): :meth:`shared` gives one per process, as the
    WebSocket service uses for every connection. Its shape is read from the graph's ``state`` input (the
    batch dimension set to 1), and the model's inputs and outputs are checked by name when the session loads.
    """

    _shared: Any = None
    _shared_lock = threading.Lock()
    INPUTS = ("input", "state", "sr")

    def __init__(self, path: Path | None = None, threads: int = 1, session: Any = None) -> None:
        self._session = session if session is not None else self._new_session(path, threads)
        self._state_shape = self._layout(self._session)
        self.reset()

    @staticmethod
    def _new_session(path: Path | None, threads: int) -> Any:
        from edgeser._optional import onnxruntime

        ort = onnxruntime()

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        return ort.InferenceSession(str(path or silero_model_path()), so, providers=["CPUExecutionProvider"])

    @classmethod
    def _layout(cls, session: Any) -> tuple[int, ...]:
        """The recurrent state's shape, from the graph: silero-vad 5-6 take ``state`` [2, batch, 128]."""
        inputs = {i.name: i for i in session.get_inputs()}
        if tuple(sorted(inputs)) != tuple(sorted(cls.INPUTS)) or len(session.get_outputs()) != 2:
            raise BackendError(f"not a silero-vad 5/6 model: inputs {sorted(inputs)}, expected {list(cls.INPUTS)} "
                               "and two outputs (probability, state)")
        dims = inputs["state"].shape
        if len(dims) != 3 or not all(isinstance(d, int) for d in (dims[0], dims[2])):
            raise BackendError(f"silero-vad's state input has shape {dims}; expected [layers, batch, width]")
        return (dims[0], 1, dims[2])

    @classmethod
    def shared(cls) -> SileroVad:
        """A detector with its own state on the process's one silero session (loaded once)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls._new_session(None, 1)
        return cls(session=cls._shared)

    def reset(self) -> None:
        self._state = np.zeros(self._state_shape, dtype=np.float32)
        self._context = np.zeros((1, _CONTEXT), dtype=np.float32)

    def __call__(self, chunk: np.ndarray) -> float:
        if chunk.shape != (CHUNK,):
            raise InputError(f"silero-vad takes chunks of {CHUNK} samples at 16 kHz, got {chunk.shape}")
        return float(self.probabilities(chunk)[0])

    def probabilities(self, wave: np.ndarray) -> np.ndarray:
        """The speech probability of every whole chunk of ``wave`` (float32 at 16 kHz), in order, from this
        detector's state (which it leaves after the last chunk): what calling it chunk by chunk gives, in about 60%
        of the time (one input buffer, no per-chunk checks or copies). The one place the model is stepped."""
        n = wave.size // CHUNK
        out = np.empty(n, dtype=np.float32)
        x = np.empty((1, _CONTEXT + CHUNK), dtype=np.float32)
        x[:, :_CONTEXT] = self._context
        state, run = self._state, self._session.run
        for k in range(n):
            x[0, _CONTEXT:] = wave[k * CHUNK : (k + 1) * CHUNK]
            p, state = run(None, {"input": x, "state": state, "sr": _RATE})
            out[k] = p[0, 0]
            x[0, :_CONTEXT] = x[0, -_CONTEXT:]
        self._state, self._context = state, x[:, :_CONTEXT].copy()
        return out


class EnergyVad:
    """A level detector with the same interface: probability 1 when a chunk's RMS is above ``threshold_db``
    dBFS. For tests with synthetic signals and for quiet, speech-only channels; not a speech detector."""

    def __init__(self, threshold_db: float = -40.0) -> None:
        self.threshold_db = threshold_db

    def reset(self) -> None:
        pass

    def __call__(self, chunk: np.ndarray) -> float:
        rms = float(np.sqrt(np.mean(chunk.astype(np.float64) ** 2)))
        return 1.0 if 20 * np.log10(max(rms, 1e-10)) > self.threshold_db else 0.0


VOICED_THRESHOLD = 0.5
"""A chunk is speech when silero's probability is at least this (silero's own default)."""
VOICED_PAD_S = 0.064
"""Frames this close to a speech chunk count as voiced too: onsets and offsets that silero's 32 ms grid cuts."""
SPAN_MARGIN_S = 0.1
"""The encoder hears the speech span (first to last speech chunk) and this much on either side."""
SPEECH_CHECK_THRESHOLD = 0.15
"""For the speech check (:meth:`edgeser.EmotionRecognizer.check_speech`), a chunk counts when silero's probability
is at least this: shouted and screamed speech, which silero scores low, still counts, while none of the synthesised
noise, tones, chords and melodies of ``benchmarks/results/speech_check.json`` reaches it for 0.25 s (at 0.5,
44 of 3,721 real recordings were refused; at 0.15, 12)."""
MIN_VOICED_S = 0.25
"""Fewer voiced seconds than this (the stream detector's shortest utterance): too little to pool over, so the
statistics run over every frame instead (:meth:`Voicing.frame_mask`)."""


@dataclass(frozen=True)
class Voicing:
    """silero-vad's verdict on one utterance: a speech probability per 32 ms chunk, from a fresh state."""

    probabilities: np.ndarray
    """``(chunks,)`` float32, chunk ``k`` covering samples ``[512 k, 512 (k + 1))``."""

    @property
    def voiced(self) -> np.ndarray:
        """``(chunks,)`` bool: the chunks that are speech."""
        return np.asarray(self.probabilities >= VOICED_THRESHOLD)

    @property
    def seconds(self) -> float:
        """Seconds of speech."""
        return float(self.voiced.sum() * CHUNK / SAMPLE_RATE)

    def seconds_at(self, threshold: float) -> float:
        """Seconds of chunks whose speech probability is at least ``threshold``."""
        return float((self.probabilities >= threshold).sum() * CHUNK / SAMPLE_RATE)

    def span(self, num_samples: int) -> slice:
        """The samples from :data:`SPAN_MARGIN_S` before the first speech chunk to as long after the last: what the
        encoder hears, so that silence around the speech changes neither the frames (Whisper's attention reaches
        every frame) nor the pooling. The whole ``num_samples`` when there is less than :data:`MIN_VOICED_S` of
        speech."""
        chunks = np.flatnonzero(self.voiced)
        if chunks.size * CHUNK < MIN_VOICED_S * SAMPLE_RATE:
            return slice(0, num_samples)
        margin = int(SPAN_MARGIN_S * SAMPLE_RATE)
        return slice(max(0, int(chunks[0]) * CHUNK - margin), min(num_samples, (int(chunks[-1]) + 1) * CHUNK + margin))

    def frame_mask(self, frames: FrameFormula, num_frames: int, start: int = 0) -> np.ndarray:
        """``(num_frames,)`` bool: the encoder frames (of audio from sample ``start`` on: a :meth:`span`) whose centre
        lies within :data:`VOICED_PAD_S` of a speech chunk. When that leaves less than :data:`MIN_VOICED_S` of frames
        (a burst, or speech silero misses), every frame is true: the utterance is pooled whole rather than over
        almost nothing."""
        every = np.ones(num_frames, dtype=bool)
        voiced = self.voiced
        if num_frames == 0 or not voiced.any():
            return every
        pad = round(VOICED_PAD_S * SAMPLE_RATE / CHUNK)
        near = np.convolve(voiced.astype(np.int32), np.ones(2 * pad + 1, dtype=np.int32), mode="same") > 0
        centres = np.asarray(frames.frame_centre_s(np.arange(num_frames)), dtype=np.float64) + start / SAMPLE_RATE
        chunk = np.clip((centres * SAMPLE_RATE // CHUNK).astype(np.int64), 0, near.size - 1)
        mask = np.asarray(near[chunk])
        return mask if mask.sum() * frames.hop_s >= MIN_VOICED_S else every


def voicing(wave: np.ndarray, vad: SileroVad | None = None) -> Voicing:
    """silero-vad's speech probability for every 32 ms chunk of ``wave`` (mono float32 at 16 kHz; the last part-chunk
    zero-padded), one chunk after another from a fresh state, as the stream detector hears it.

    (Stepping 0.5 s lanes of one utterance as a batch is 2.5 times cheaper, but silero's state has a long memory:
    whatever the warm-up, such lanes called up to 40% of a file's chunks otherwise, so it is not done.)
    ``vad``: the detector to use (reset first); by default one on the process's shared session."""
    vad = vad or SileroVad.shared()
    vad.reset()
    n = max(1, -(-wave.size // CHUNK))
    padded = np.zeros(n * CHUNK, dtype=np.float32)
    padded[: wave.size] = wave
    return Voicing(vad.probabilities(padded))


__all__ = ["CHUNK", "MIN_VOICED_S", "SILERO_MODEL", "SPAN_MARGIN_S", "VOICED_PAD_S", "VOICED_THRESHOLD", "EnergyVad",
           "SileroVad", "Voicing", "silero_model_path", "voicing"]
