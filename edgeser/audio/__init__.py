"""Audio in: decode, downmix, resample to the bundle's rate, and refuse what cannot work.

Accepted: a path to WAV/FLAC/OGG (anything libsndfile reads), or a numpy array of shape
``(samples,)`` or ``(samples, channels)`` with its sample rate. Integer PCM is scaled to
[-1, 1]; stereo is averaged to mono; any rate is resampled with soxr (high quality).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from edgeser.errors import AlignmentError, AudioError

log = logging.getLogger(__name__)

AudioSource = str | os.PathLike[str] | np.ndarray
"""A file path, or an array of samples (which then needs its sample rate)."""

MAX_CHANNELS = 2
CLIP_LEVEL = 0.999
"""A sample this close to full scale counts as clipped."""
CLIP_SHARE_WARN = 0.01
"""More clipped samples than this share is warned of (a file, or a stream's input)."""

SAMPLE_RATE = 16_000
"""The rate every edgeser graph, detector and result runs at (Hz); audio at other rates is resampled to it."""


def audio_info(path: str | os.PathLike[str], max_seconds: float | None = None) -> Any:
    """A file's header (``soundfile.info``: rate, channels, frames, duration), read without decoding the audio;
    refuses a file longer than ``max_seconds`` before it costs any memory, and warns of a WAV whose data chunk is
    shorter than its header declares (a truncated copy or download).

    Raises:
        AudioError: No such file, a format libsndfile cannot read, or too long.
    """
    p = Path(path)
    if p.is_dir():
        raise AudioError(f"{p}: a folder, not an audio file; for every file in it use `edgeser batch {p} --out DIR`")
    if not p.is_file():
        raise AudioError(f"{p}: no such audio file")
    if p.suffix.lower() in (".mp3", ".mp2", ".mpga"):  # libmpg123 prints notes of its own on anything else
        with open(p, "rb") as f:
            head = f.read(3)
        if not (head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)):
            raise AudioError(f"{p}: not MPEG audio (it starts with {head!r}, not an ID3 tag or an MPEG frame); "
                             "check the file, or convert it first, e.g. with ffmpeg")
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"{p}: cannot decode audio ({_short(e)}); edgeser reads WAV, FLAC and OGG (anything "
                         "libsndfile reads); convert other formats first, e.g. with ffmpeg") from e
    if max_seconds is not None and info.duration > max_seconds:
        raise AudioError(f"{p}: audio is {info.duration:.1f} s, the limit is {max_seconds:.1f} s for one prediction; "
                         "for a long recording use `edgeser listen --file`, which cuts it into utterances (in "
                         "Python: EmotionRecognizer.stream, or RuntimeOptions.max_audio_s)")
    declared = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", info.extra_info, re.MULTILINE)
    if declared and int(declared.group(2)) < int(declared.group(1)):
        log.warning("%s: truncated: its header declares %d bytes of audio, the file holds %d (%.1f s are read)",
                    p, int(declared.group(1)), int(declared.group(2)), info.duration)
    return info


def _short(e: Exception) -> str:
    """libsndfile's message without the path it repeats and its guesses ("possibly a pipe?", "File does not exist
    or is not a regular file" for a file that exists but is not audio)."""
    text = re.sub(r"\s*\(possibly a pipe\?\)|Error opening '.*?': ", "", str(e)).strip()
    if not text or "does not exist or is not a regular file" in text:
        return "not a format libsndfile recognises"
    return text


def read_audio(source: AudioSource, sample_rate: int | None = None, max_seconds: float | None = None
               ) -> tuple[np.ndarray, int]:
    """Decode ``source`` into float32 samples of shape ``(samples, channels)`` and its rate (a file's header is
    checked against ``max_seconds`` first: :func:`audio_info`)."""
    if isinstance(source, np.ndarray):
        if sample_rate is None:
            raise AudioError("an audio array needs its sample rate: pass sample_rate=... (e.g. 16000)")
        return _array_to_float(source), int(sample_rate)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        audio_info(path, max_seconds)
        if sample_rate is not None:
            log.warning("sample_rate=%s ignored for %s: a file carries its own rate", sample_rate, path)
        try:
            data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError) as e:
            raise AudioError(f"{path}: cannot decode audio ({_short(e)}); edgeser reads WAV, FLAC and OGG "
                             "(anything libsndfile reads); convert other formats first, e.g. with ffmpeg") from e
        return data, int(rate)
    raise AudioError(f"audio must be a file path or a numpy array, got {type(source).__name__}")


def _array_to_float(a: np.ndarray) -> np.ndarray:
    if a.ndim == 1:
        a = a[:, None]
    elif a.ndim != 2:
        raise AudioError(f"audio array must be (samples,) or (samples, channels), got shape {a.shape}")
    return pcm_to_float(a)


def pcm_to_float(a: np.ndarray) -> np.ndarray:
    """Samples as float32 in [-1, 1], whatever their shape: float passes through; signed integer PCM (int16, int32)
    is divided by 2^(bits - 1); unsigned (8-bit WAV) is centred first. The one conversion that :func:`load_audio`,
    streams (:meth:`edgeser.streaming.Stream.accept_waveform`) and the service use.

    Raises:
        AudioError: Samples that are neither float nor integer PCM (bool, complex, strings).
    """
    if a.dtype.kind == "f":
        return a.astype(np.float32, copy=False)
    if a.dtype.kind == "i":
        return (a / float(-np.iinfo(a.dtype).min)).astype(np.float32)
    if a.dtype.kind == "u":
        mid = (np.iinfo(a.dtype).max + 1) / 2
        return ((a - mid) / mid).astype(np.float32)
    raise AudioError(f"audio array must hold float or integer PCM samples, got dtype {a.dtype}")


def load_audio(
    source: AudioSource,
    sample_rate: int | None = None,
    *,
    target_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
    min_samples: int = 1,
) -> np.ndarray:
    """Read, check, downmix and resample audio to mono float32 at ``target_rate``.

    Args:
        source: A path, or an array ``(samples,)`` / ``(samples, channels)``.
        sample_rate: The array's rate; ignored (with a warning) for files.
        target_rate: The rate the model expects (the bundle's ``speech.frames.sample_rate``).
        max_seconds: Refuse audio longer than this.
        min_samples: Refuse audio shorter than this after resampling (the encoder's receptive field).

    Returns:
        A 1-D float32 array.

    Raises:
        AudioError: Unreadable, empty, silent, non-finite, too short or too long audio, or a
            channel layout other than mono or stereo.
    """
    data, rate = read_audio(source, sample_rate, max_seconds)
    name = _name(source)
    if rate <= 0:
        raise AudioError(f"{name}: sample rate must be positive, got {rate}")
    if data.size == 0:
        raise AudioError(f"{name}: the audio is empty ({data.shape[0]} samples of {data.shape[1]} channels)")
    channels = data.shape[1]
    if channels > MAX_CHANNELS:
        raise AudioError(f"{name}: {channels} channels; edgeser takes mono or stereo. Pick the channel "
                         f"with the voice first (e.g. audio[:, 0]); if this array is (channels, samples), "
                         "transpose it to (samples, channels)")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(f"{name}: {bad} samples are NaN or infinite; the decoder or upstream processing "
                         "produced invalid values")
    duration = data.shape[0] / rate
    if max_seconds is not None and duration > max_seconds:
        raise AudioError(f"{name}: audio is {duration:.1f} s, the limit is {max_seconds:.1f} s "
                         "for one prediction; for a long recording use `edgeser listen --file`, which cuts it into "
                         "utterances (in Python: EmotionRecognizer.stream, or RuntimeOptions.max_audio_s)")
    mono = data.mean(axis=1) if channels > 1 else data[:, 0]
    peak = float(np.abs(mono).max())
    if peak == 0.0:
        raise AudioError(f"{name}: the audio is silent (every sample is zero); check the microphone or file")
    clipped = float(np.mean(np.abs(mono) >= CLIP_LEVEL))
    if clipped > CLIP_SHARE_WARN:
        log.warning("%s: %.1f%% of samples are clipped at full scale; recognition may degrade", name, 100 * clipped)
    if peak > 1.0 + 1e-6:
        log.warning("%s: float samples reach %.3g, beyond [-1, 1]; is this integer PCM stored as float?", name, peak)
    mono = resample(mono, rate, target_rate)
    if mono.shape[0] < min_samples:
        raise AudioError(f"{name}: audio is {mono.shape[0]} samples ({1e3 * mono.shape[0] / target_rate:.1f} ms) "
                         f"at {target_rate} Hz, the encoder needs at least {min_samples} "
                         f"({1e3 * min_samples / target_rate:.1f} ms); pass longer audio")
    return np.ascontiguousarray(mono, dtype=np.float32)


def resample(mono: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """A whole signal to ``target_rate`` (soxr, high quality); float32. The one resampler of edgeser, with
    :class:`Resampler` for audio that arrives in pieces."""
    if rate == target_rate:
        return np.asarray(mono, dtype=np.float32)
    return np.asarray(soxr.resample(mono, rate, target_rate, quality="HQ"), dtype=np.float32)


class Resampler:
    """:func:`resample` for audio that arrives in pieces (a stream, a microphone): the filter's state carries
    over from one piece to the next, so the joins are seamless; ``last=True`` flushes what it holds back."""

    def __init__(self, rate: int, target_rate: int) -> None:
        self._stream = (soxr.ResampleStream(rate, target_rate, 1, dtype="float32", quality="HQ")
                        if rate != target_rate else None)

    def __call__(self, piece: np.ndarray, last: bool = False) -> np.ndarray:
        piece = np.asarray(piece, dtype=np.float32)
        if self._stream is None:
            return piece
        return np.asarray(self._stream.resample_chunk(piece, last=last), dtype=np.float32)


def _name(source: AudioSource) -> str:
    return "audio array" if isinstance(source, np.ndarray) else str(source)


SILENCE_DBFS = -60.0
"""Audio whose loud frames stay below this is treated as silence (RAVDESS's quietest file reaches -54)."""
_LEVEL_FRAME = 320  # 20 ms at 16 kHz


def check_not_silent(wave: np.ndarray) -> None:
    """Raise :class:`AlignmentError` when even the loud 20 ms frames (99th percentile of frame RMS) are
    below :data:`SILENCE_DBFS`. Long pauses around soft speech do not count against it."""
    n = max(1, wave.size // _LEVEL_FRAME)
    frames = np.resize(wave.astype(np.float64), n * _LEVEL_FRAME).reshape(n, -1)
    level = 20 * np.log10(max(float(np.percentile(np.sqrt(np.mean(frames**2, axis=1)), 99)), 1e-12))
    if level < SILENCE_DBFS:
        raise AlignmentError(f"the audio is silent for alignment purposes (its loudest frames are {level:.0f} dBFS, "
                             f"below {SILENCE_DBFS:.0f} dBFS); check the recording level or the microphone")
