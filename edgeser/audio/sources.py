"""Where a stream's audio comes from: iterables of mono float32 chunks, with whether they are live (a live source
cannot wait, so a stream over it drops rather than blocks): :func:`file_source`, :func:`pcm_source` (raw 16-bit PCM,
e.g. stdin from a ROS node or GStreamer), :func:`microphone_source` (``sounddevice``); and :class:`InputMeter`, what a
source delivered. :mod:`edgeser.streaming` runs them (and re-exports them)."""

from __future__ import annotations

import dataclasses
import logging
import queue
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from edgeser.audio import CLIP_LEVEL, CLIP_SHARE_WARN, SAMPLE_RATE, Resampler, audio_info, pcm_to_float

log = logging.getLogger(__name__)

@dataclass
class Source:
    """Chunks of mono float32 audio at ``sample_rate`` (resampled to 16 kHz by the stream they feed); ``live``
    sources (a microphone, a pipe) cannot wait, so a stream over them drops rather than blocks."""

    chunks: Iterable[np.ndarray]
    live: bool
    name: str
    sample_rate: int = SAMPLE_RATE


class InputMeter:
    """What a source delivered (seconds, level, clipping), to tell a user why a stream found no speech:
    :meth:`wrap` a source, run the stream, then :meth:`advice`."""

    def __init__(self) -> None:
        self.samples, self.clipped, self.peak, self.rate = 0, 0, 0.0, SAMPLE_RATE
        self._energy = 0.0

    def wrap(self, source: Source) -> Source:
        self.rate = source.sample_rate

        def chunks() -> Iterator[np.ndarray]:
            for x in source.chunks:
                a = np.abs(np.asarray(x, dtype=np.float32))
                if a.size:
                    self.samples += a.size
                    self._energy += float(np.dot(a.astype(np.float64), a))
                    self.peak = max(self.peak, float(a.max()))
                    self.clipped += int((a >= CLIP_LEVEL).sum())
                yield x

        return dataclasses.replace(source, chunks=chunks())

    @property
    def seconds(self) -> float:
        return self.samples / self.rate

    @property
    def rms_dbfs(self) -> float:
        return 10 * float(np.log10(max(self._energy / max(self.samples, 1), 1e-20)))

    @property
    def peak_dbfs(self) -> float:
        return 20 * float(np.log10(max(self.peak, 1e-10)))

    def advice(self, utterances: int, raw_pcm: bool = False) -> list[str]:
        """Warnings for a stream that found ``utterances`` in this audio (``raw_pcm``: headerless PCM, whose rate
        and channels only the user's options tell)."""
        out = []
        if self.samples == 0:
            return ["no audio arrived"]
        if utterances == 0:
            found = f"no speech found in {self.seconds:.1f} s of audio"
            if self.peak_dbfs < -50:
                out.append(f"{found}, and it is nearly silent (peak {self.peak_dbfs:.0f} dBFS): check the microphone "
                           "and its gain, or what feeds the pipe")
            elif raw_pcm and self.rms_dbfs > -45:
                out.append(f"{found} at {self.rms_dbfs:.0f} dBFS: if it holds speech, check that --rate and "
                           "--channels say how it was recorded (e.g. `arecord -f S16_LE -r 16000 -c 1 | edgeser "
                           "listen --stdin`; 48 kHz stereo read as 16 kHz mono sounds six times slower)")
            else:
                out.append(f"{found} (level {self.rms_dbfs:.0f} dBFS): noise, music or silence gets no label")
        if self.clipped > CLIP_SHARE_WARN * self.samples:
            out.append(f"{100 * self.clipped / self.samples:.1f}% of samples are at full scale: the input clips; "
                       "lower the gain")
        return out


def file_source(path: str | Path, realtime: bool = False, chunk_s: float = 0.1) -> Source:
    """A WAV/FLAC/OGG file (any rate, any channels, downmixed) at real-time pace or as fast as possible, read and
    resampled a block at a time: memory stays flat however long the recording (the header is checked first,
    :func:`edgeser.audio.audio_info`)."""
    import soundfile as sf

    info = audio_info(path)
    block = max(1, int(chunk_s * info.samplerate))

    def chunks() -> Iterator[np.ndarray]:
        t0, sent = time.perf_counter(), 0
        resample = Resampler(int(info.samplerate), SAMPLE_RATE)
        with sf.SoundFile(str(path)) as f:
            for data in f.blocks(blocksize=block, dtype="float32", always_2d=True):
                x = resample(data.mean(axis=1) if data.shape[1] > 1 else data[:, 0])
                if realtime:
                    delay = t0 + sent / SAMPLE_RATE - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                sent += x.size
                yield x
        yield resample(np.zeros(0, np.float32), last=True)

    return Source(chunks(), live=realtime, name=str(path))


class PcmDecoder:
    """Little-endian signed 16-bit PCM, in pieces of any size (a frame may be split between two), to mono
    float32 at 16 kHz: channels averaged, resampled as it arrives."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, channels: int = 1) -> None:
        self.channels = channels
        self._rest = b""
        self._resample = Resampler(sample_rate, SAMPLE_RATE)

    def __call__(self, data: bytes, last: bool = False) -> np.ndarray:
        """The samples of ``data`` (and of bytes held back from earlier); ``last`` flushes the resampler."""
        frame = 2 * self.channels
        data = self._rest + data
        usable = len(data) - len(data) % frame
        self._rest = data[usable:]
        x = pcm_to_float(np.frombuffer(data[:usable], dtype="<i2"))
        if self.channels > 1:
            x = x.reshape(-1, self.channels).mean(axis=1)
        return self._resample(x, last=last)


def pcm_source(stream: BinaryIO | None = None, sample_rate: int = SAMPLE_RATE, channels: int = 1,
               chunk_s: float = 0.1) -> Source:
    """Raw little-endian 16-bit PCM (stdin by default), resampled to 16 kHz as it arrives."""
    f = stream if stream is not None else sys.stdin.buffer
    step = int(chunk_s * sample_rate) * 2 * channels
    decode = PcmDecoder(sample_rate, channels)

    def chunks() -> Iterator[np.ndarray]:
        while True:
            data = f.read(step)
            x = decode(data or b"", last=not data)
            if x.size:
                yield x
            if not data:
                return

    return Source(chunks(), live=True, name="pcm")


def microphone_source(sample_rate: int = SAMPLE_RATE, device: int | str | None = None, chunk_s: float = 0.1
                      ) -> Source:
    """The default (or named) input device through ``sounddevice`` (``pip install "edgeser[stream]"``)."""
    from edgeser._optional import require

    sd = require("sounddevice", "stream", "microphone input")
    q: queue.Queue[np.ndarray] = queue.Queue(maxsize=100)

    def callback(indata: np.ndarray, frames: int, t: Any, status: Any) -> None:
        if status:
            log.warning("microphone: %s", status)
        try:
            q.put_nowait(indata[:, 0].copy())
        except queue.Full:
            log.warning("microphone: dropped %d samples (the reader is not keeping up)", frames)

    def chunks() -> Iterator[np.ndarray]:
        with sd.InputStream(samplerate=sample_rate, channels=1, dtype="float32", device=device,
                            blocksize=int(chunk_s * sample_rate), callback=callback):
            while True:
                yield q.get()

    # blocks at the device's rate: the AudioStream they feed resamples them (one filter across blocks)
    return Source(chunks(), live=True, name="microphone", sample_rate=sample_rate)
