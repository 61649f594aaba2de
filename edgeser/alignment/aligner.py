"""Segmentation without a bundle: the default phoneme aligner (hama) over any audio."""

from __future__ import annotations

import functools

import numpy as np

from edgeser.alignment.ctc.hama import FRAME_SAMPLES, HamaAligner
from edgeser.alignment.phonetics.lexicon import Lexicon
from edgeser.alignment.segmenter import Segmentation, segment
from edgeser.audio import SAMPLE_RATE, AudioSource, check_not_silent, load_audio
from edgeser.options import SegmentOptions

DEFAULT_MAX_AUDIO_S = 600.0


@functools.lru_cache(maxsize=1)
def default_aligner() -> HamaAligner:
    return HamaAligner()


def align(audio: AudioSource, text: str | None = None, *, sample_rate: int | None = None,
          options: SegmentOptions | None = None, lexicon: Lexicon | None = None,
          max_audio_s: float = DEFAULT_MAX_AUDIO_S) -> Segmentation:
    """Words, syllables and phones of ``audio`` with the default phoneme aligner (needs ``edgeser[align]``).

    Example:
        >>> from edgeser.alignment.aligner import align
        >>> seg = align("edgeser/samples/kids_talking.wav", "Kids are talking by the door.")
        >>> [w.label for w in seg.words]
        ['kids', 'are', 'talking', 'by', 'the', 'door']
    """
    wave = load_audio(audio, sample_rate, target_rate=SAMPLE_RATE, max_seconds=max_audio_s,
                      min_samples=FRAME_SAMPLES)
    check_not_silent(wave)
    return segment_wave(wave, text, options=options, lexicon=lexicon)


def segment_wave(wave: np.ndarray, text: str | None = None, *, options: SegmentOptions | None = None,
                 lexicon: Lexicon | None = None) -> Segmentation:
    """:func:`align` for 16 kHz mono float32 audio already read and checked."""
    aligner = default_aligner()
    return segment(aligner.emissions(wave), text, aligner=aligner.name, lexicon=lexicon, options=options)
