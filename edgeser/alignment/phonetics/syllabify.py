"""Syllables from IPA phones by the maximal-onset principle over English onsets.

Each vowel is a nucleus. Consonants between two nuclei go to the next syllable's onset as far as
the longest legal English onset allows; the rest close the previous syllable. A word without a vowel
(``hmm``) is one syllable. Known limit of pure maximal onset: ``bedroom`` splits as be.droom.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

VOWELS = frozenset("ɑ æ ʌ ə ɔ aʊ aɪ ɛ ɝ ɚ eɪ ɪ i oʊ o ɔɪ ʊ u a e ɒ ɐ ɜ ɘ ɵ ɤ ø œ y ʏ ɯ ɨ ʉ eə ɪə".split())

_STOPS = ("p", "b", "t", "d", "k", "ɡ")
_ONSETS = frozenset(
    [(c,) for c in "p b t d k ɡ f v θ ð s z ʃ ʒ h m n l ɹ w j t͡ʃ d͡ʒ".split()]
    + [(a, b) for a in ("p", "b", "k", "ɡ", "f") for b in ("l", "ɹ")]
    + [(a, "ɹ") for a in ("t", "d", "θ", "ʃ")]
    + [(a, "w") for a in ("t", "d", "k", "ɡ", "s", "θ")]
    + [(a, "j") for a in (*_STOPS, "f", "v", "m", "n", "h", "l", "s")]
    + [("s", b) for b in ("p", "t", "k", "m", "n", "l", "f")]
    + [("s", "p", "l"), ("s", "p", "ɹ"), ("s", "p", "j"), ("s", "t", "ɹ"), ("s", "t", "j"), ("s", "k", "ɹ"),
       ("s", "k", "w"), ("s", "k", "l"), ("s", "k", "j")]
)


_MANNER = {**{p: "stop" for p in ("p", "b", "t", "d", "k", "ɡ", "g", "ʔ", "t͡ʃ", "d͡ʒ", "tʃ", "dʒ")},
           **{p: "sibilant" for p in ("s", "z", "ʃ", "ʒ")},
           **{p: "fricative" for p in ("f", "v", "θ", "ð", "h")},
           **{p: "nasal" for p in ("m", "n", "ŋ")},
           **{p: "approximant" for p in ("l", "ɹ", "r", "w", "j", "ɫ")}}


def manner(phone: str) -> str | None:
    """The manner class of an IPA phone: ``vowel``, ``stop`` (affricates included), ``sibilant`` (s z ʃ ʒ,
    whose loud frication lasts longest), ``fricative`` (the other fricatives), ``nasal`` or ``approximant``;
    ``None`` when unknown."""
    if is_vowel(phone):
        return "vowel"
    return _MANNER.get(phone.rstrip("ːˑ"))


def is_vowel(phone: str) -> bool:
    """True for vowels and diphthongs (length marks ignored)."""
    return phone.rstrip("ːˑ") in VOWELS


def syllabify(phones: Sequence[str]) -> list[tuple[int, int]]:
    """Split one word's phones into syllables; returns ``(start, end)`` phone index ranges covering all phones."""
    nuclei = [i for i, p in enumerate(phones) if is_vowel(p)]
    if not nuclei:
        return [(0, len(phones))] if phones else []
    starts = [0]
    for prev, nxt in itertools.pairwise(nuclei):
        cluster = tuple(phones[prev + 1 : nxt])
        onset = 0
        for k in range(len(cluster), 0, -1):
            if cluster[len(cluster) - k :] in _ONSETS:
                onset = k
                break
        starts.append(nxt - onset)
    return [(s, e) for s, e in zip(starts, [*starts[1:], len(phones)], strict=True)]
