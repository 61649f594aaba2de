"""Word-start agreement on synthesized English, where the synthesizer itself reports word timing.

libespeak-ng (Debian's ``libespeak-ng1``) synthesizes each sentence and emits a WORD event with the
audio position (ms) at which each word starts. That is an exact reference, independent of any aligner.
Only starts are compared: espeak reports no word ends, and pauses at punctuation make "the next start"
a poor end. The default aligner (hama phoneme CTC + edgeser's Viterbi) runs with its default boundary
rule (tuned on RAVDESS against pocketsphinx, never on this data) and without it (raw spikes).

    python -m edgeser_benchmarks.studies.espeak_agreement --out benchmarks/results/espeak_agreement.json
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from edgeser.alignment.aligner import align
from edgeser.options import SegmentOptions
from edgeser_benchmarks.provenance import write_result
from edgeser_benchmarks.stats import error_summary

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please put the books back on the shelf before dinner.",
    "I never said she stole my money.",
    "Could you call me when the train arrives at the station?",
    "We walked along the river until the sun went down.",
    "My brother bought seven oranges and a bag of rice.",
    "Turn left at the next corner and keep going straight.",
    "Nobody knows why the lights went out last night.",
    "She plays the violin every morning in the kitchen.",
    "The meeting was moved to Thursday afternoon at four.",
    "Kids are talking by the door.",
    "Dogs are sitting by the door.",
    "Remember to water the plants while I am away.",
    "His old car finally broke down on the highway.",
    "They laughed so hard that everyone turned around.",
    "Open the window, it is getting warm in here.",
    "A small bird landed on the fence and started singing.",
    "Why would anyone leave a perfectly good job like that?",
    "The children built a castle out of sand and shells.",
    "Thank you for waiting, the doctor will see you now.",
)
RATES = (140, 175, 210)  # words per minute


class _Event(ctypes.Structure):
    class _Id(ctypes.Union):
        _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _Id)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_WORD, _TERMINATED, _SYNCHRONOUS = 1, 0, 2


class Espeak:
    """libespeak-ng in synchronous mode: audio samples plus word-start events."""

    def __init__(self, voice: str = "en-us") -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        self.lib = ctypes.CDLL(name)
        self.rate = self.lib.espeak_Initialize(_SYNCHRONOUS, 500, None, 0)
        if self.rate <= 0:
            raise RuntimeError("espeak_Initialize failed")
        self.lib.espeak_SetVoiceByName(voice.encode())
        self._samples: list[np.ndarray] = []
        self._words: list[tuple[int, int]] = []  # (text_position, audio ms)
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: C holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav: Any, n: int, events: Any) -> int:
        if n > 0:
            self._samples.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _TERMINATED:
            if events[i].type == _WORD:
                self._words.append((events[i].text_position, events[i].audio_position))
            i += 1
        return 0

    def say(self, text: str, words_per_minute: int) -> tuple[np.ndarray, dict[int, float]]:
        """Samples (float32), and word starts in seconds keyed by the word's character offset in ``text``.

        espeak folds some unstressed words into the next one's event ("on the shelf" gives one event):
        such words have no entry. Events at position 0 (clause boundaries) are dropped.
        """
        self._samples, self._words = [], []
        self.lib.espeak_SetParameter(1, words_per_minute, 0)  # espeakRATE
        data = text.encode()
        self.lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 0, None, None)  # POS_CHARACTER, espeakCHARS_AUTO
        self.lib.espeak_Synchronize()
        audio = np.concatenate(self._samples).astype(np.float32) / 32768.0
        return audio, {pos - 1: ms / 1000 for pos, ms in self._words if pos > 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    tts = Espeak()
    raw_options = SegmentOptions.exact()
    raw: list[float] = []
    ruled: list[float] = []
    skipped = folded = 0
    for rate in RATES:
        for text in SENTENCES:
            audio, starts = tts.say(text, rate)
            with_rule = align(audio, text, sample_rate=tts.rate)
            without = align(audio, text, sample_rate=tts.rate, options=raw_options)
            offsets = [m.start() for m in re.finditer(r"[A-Za-z']+", text)]
            if len(offsets) != len(with_rule.words):
                skipped += 1
                continue
            for offset, w, w_raw in zip(offsets, with_rule.words, without.words, strict=True):
                if offset in starts:  # words espeak timed on their own
                    ruled.append(w.start_s - starts[offset])
                    raw.append(w_raw.start_s - starts[offset])
                else:
                    folded += 1
    result = {"reference": "libespeak-ng word events (en-us voice)", "sentences": len(SENTENCES),
              "rates_wpm": list(RATES), "sentences_skipped": skipped,
              "words_without_own_espeak_event": folded,
              "raw_spikes": error_summary(raw), "default_boundary_rule": error_summary(ruled)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
