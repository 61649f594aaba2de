"""What a robot's microphone does to speech, as training augmentation and as test conditions.

Each transform takes and returns mono float32 at 16 kHz and draws from the ``numpy.random.Generator`` it is given,
so a copy is reproducible from its seed. :func:`augment` chains them at random, as the default model is trained:

- leading and trailing silence (faint noise) or a crop of the speech (a VAD cuts late or early);
- speed perturbation (0.9-1.1, tempo and pitch together, as Kaldi's speed perturbation; soxr resampling);
- reverberation: the impulse response of a random shoebox room with RT60 0.2-1.0 s (pyroomacoustics' image
  source method; a maintained library rather than our own room model);
- additive noise at 0-20 dB SNR: white, pink or brown (spectrally shaped Gaussian), or babble (3-6 talkers from
  ``librispeech/``, never the talkers that score the narration);
- band limits: telephone (300-3400 Hz) or a far-field microphone (100 Hz-4 kHz);
- gain (-12 to +6 dB, clipped at full scale).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import soxr
from scipy.signal import butter, fftconvolve, sosfilt

RATE = 16000
NOISES = ("white", "pink", "brown", "babble")


def level(x: np.ndarray) -> float:
    """Root-mean-square level (at least 1e-10)."""
    return max(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))), 1e-10)


def coloured_noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of unit-RMS white, pink (1/f power) or brown (1/f^2) noise."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    f[0] = f[1] if n > 1 else 1.0
    power = {"white": 0.0, "pink": 1.0, "brown": 2.0}[colour]
    x = np.fft.irfft(spectrum / f ** (power / 2), n)
    return (x / level(x)).astype(np.float32)


def babble(n: int, talkers: Sequence[np.ndarray], rng: np.random.Generator, voices: int = 0) -> np.ndarray:
    """``n`` samples of unit-RMS babble: the sum of 3-6 (or ``voices``) random excerpts of ``talkers``."""
    if not talkers:
        raise ValueError("babble needs recordings of talkers")
    out = np.zeros(n, dtype=np.float64)
    for _ in range(voices or int(rng.integers(3, 7))):
        t = talkers[int(rng.integers(len(talkers)))]
        start = int(rng.integers(max(1, t.size - n)))
        piece = np.resize(t[start : start + n], n)  # a short talker repeats
        out += piece / level(piece)
    return (out / level(out)).astype(np.float32)


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``x`` plus ``noise`` scaled to ``snr_db`` below ``x``'s level."""
    return (x + noise[: x.size] * level(x) / level(noise) * 10 ** (-snr_db / 20)).astype(np.float32)


def room_impulse_response(rt60: float, rng: np.random.Generator) -> np.ndarray:
    """A random shoebox room (3-10 x 3-8 x 2.5-4 m) whose walls give ``rt60`` seconds by Sabine's formula, source and
    microphone at random places at least 0.5 m from the walls: its impulse response (pyroomacoustics)."""
    import pyroomacoustics as pra

    dims = np.array([rng.uniform(3, 10), rng.uniform(3, 8), rng.uniform(2.5, 4)])
    try:
        absorption, order = pra.inverse_sabine(rt60, dims)
    except ValueError:  # a room too small for so long a reverberation: make it larger
        dims = dims * 2
        absorption, order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=RATE, materials=pra.Material(absorption), max_order=min(order, 17))
    place = [lambda: np.array([rng.uniform(0.5, d - 0.5) for d in dims]) for _ in range(2)]
    room.add_source(place[0]())
    room.add_microphone(place[1]())
    room.compute_rir()
    return np.asarray(room.rir[0][0], dtype=np.float32)


def reverberate(x: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` in a random room of ``rt60`` seconds, at its own level, trimmed to its length plus the decay."""
    rir = room_impulse_response(rt60, rng)
    y = np.asarray(fftconvolve(x, rir))[: x.size + int(rt60 * RATE)]
    return (y * level(x) / level(y)).astype(np.float32)


def band_limit(x: np.ndarray, kind: str) -> np.ndarray:
    """``telephone`` (300-3400 Hz) or ``far-field`` (100 Hz-4 kHz): a 4th-order Butterworth band-pass."""
    low, high = {"telephone": (300, 3400), "far-field": (100, 4000)}[kind]
    sos = butter(4, [low, high], btype="bandpass", fs=RATE, output="sos")
    return np.asarray(sosfilt(sos, x), dtype=np.float32)


def speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Played ``factor`` times faster (tempo and pitch), by resampling."""
    return np.asarray(soxr.resample(x, RATE * factor, RATE), dtype=np.float32)


def pad_silence(x: np.ndarray, before_s: float, after_s: float, rng: np.random.Generator,
                floor_db: float = -55.0) -> np.ndarray:
    """``x`` with faint pink noise (``floor_db`` dBFS) before and after it."""
    a, b = int(before_s * RATE), int(after_s * RATE)
    noise = coloured_noise(a + b + 1, "pink", rng) * 10 ** (floor_db / 20)
    return np.concatenate([noise[:a], x, noise[a : a + b]]).astype(np.float32)


def trim(x: np.ndarray, threshold: float = 0.005, window_s: float = 0.05) -> np.ndarray:
    """``x`` without its leading and trailing stretches where no ``window_s`` window peaks above ``threshold`` of full
    scale (sox's ``silence 1 0.05 0.5% reverse silence 1 0.05 0.5% reverse``)."""
    w = max(1, int(window_s * RATE))
    loud = np.flatnonzero(np.abs(x) > threshold)
    if loud.size == 0:
        return x
    start, end = max(0, loud[0] - w // 2), min(x.size, loud[-1] + w // 2)
    return x[start:end] if end - start >= RATE // 4 else x


@dataclass(frozen=True)
class Augmentation:
    """:func:`augment`'s probabilities and ranges (the defaults train the default model)."""

    silence: float = 0.5
    crop: float = 0.2
    speed: float = 0.3
    reverb: float = 0.3
    noise: float = 0.6
    band: float = 0.25


def augment(x: np.ndarray, rng: np.random.Generator, talkers: Sequence[np.ndarray],
            settings: Augmentation = Augmentation()) -> tuple[np.ndarray, list[str]]:
    """A random robot's-ear copy of ``x``, and what was done to it (for the record)."""
    done = []
    if rng.random() < settings.crop:
        keep = rng.uniform(0.6, 1.0)
        n = max(RATE // 2, int(x.size * keep))
        start = int(rng.integers(0, max(1, x.size - n)))
        x = x[start : start + n]
        done.append(f"crop {keep:.2f}")
    if rng.random() < settings.silence:
        before, after = rng.uniform(0, 1.5), rng.uniform(0, 1.5)
        x = pad_silence(trim(x), before, after, rng, floor_db=rng.uniform(-65, -45))
        done.append(f"silence {before:.1f}+{after:.1f} s")
    if rng.random() < settings.speed:
        factor = rng.uniform(0.9, 1.1)
        x = speed(x, factor)
        done.append(f"speed {factor:.2f}")
    if rng.random() < settings.reverb:
        rt60 = rng.uniform(0.2, 1.0)
        x = reverberate(x, rt60, rng)
        done.append(f"reverb {rt60:.2f} s")
    if rng.random() < settings.noise:
        kind = NOISES[int(rng.integers(len(NOISES)))] if talkers else NOISES[int(rng.integers(3))]
        snr = rng.uniform(0, 20)
        noise = babble(x.size, talkers, rng) if kind == "babble" else coloured_noise(x.size, kind, rng)
        x = add_noise(x, noise, snr)
        done.append(f"{kind} {snr:.0f} dB")
    if rng.random() < settings.band:
        kind = ("telephone", "far-field")[int(rng.integers(2))]
        x = band_limit(x, kind)
        done.append(kind)
    gain = rng.uniform(-12, 6)
    x = x * 10 ** (gain / 20)
    peak = float(np.abs(x).max(initial=0.0))
    if peak > 1.0:
        x = x / peak
    return np.asarray(x, dtype=np.float32), done


__all__ = ["NOISES", "Augmentation", "add_noise", "augment", "babble", "band_limit", "coloured_noise", "pad_silence",
           "reverberate", "room_impulse_response", "speed", "trim"]
