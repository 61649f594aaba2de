"""Pronunciations: CMUdict (the BSD copy inside ``pocketsphinx``) first, ``hama``'s neural G2P for the rest.

Phones are IPA. CMUdict's ARPAbet is mapped with a fixed table; pocketsphinx's copy has no stress
marks, so vowels that stress would decide (AH: ʌ or ə, ER: ɝ or ɚ) are written with the stressed
symbol and :data:`EQUIVALENT` lets an aligner accept either.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeser._optional import require

log = logging.getLogger(__name__)

ARPABET_TO_IPA = {
    "AA": "ɑ", "AE": "æ", "AH": "ʌ", "AO": "ɔ", "AW": "aʊ", "AY": "aɪ", "EH": "ɛ", "ER": "ɝ", "EY": "eɪ",
    "IH": "ɪ", "IY": "i", "OW": "oʊ", "OY": "ɔɪ", "UH": "ʊ", "UW": "u",
    "B": "b", "CH": "t͡ʃ", "D": "d", "DH": "ð", "F": "f", "G": "ɡ", "HH": "h", "JH": "d͡ʒ", "K": "k", "L": "l",
    "M": "m", "N": "n", "NG": "ŋ", "P": "p", "R": "ɹ", "S": "s", "SH": "ʃ", "T": "t", "TH": "θ", "V": "v",
    "W": "w", "Y": "j", "Z": "z", "ZH": "ʒ",
}
EQUIVALENT = (("ʌ", "ə"), ("ɝ", "ɚ"), ("ɔ", "ɑ"), ("oʊ", "o"), ("ɡ", "g"))
"""Phones an aligner may treat as one: unstressed/stressed pairs, the cot–caught merger, g spellings."""


def equivalents(phone: str) -> tuple[str, ...]:
    """``phone`` and the phones :data:`EQUIVALENT` groups with it (``phone`` first)."""
    for group in EQUIVALENT:
        if phone in group:
            return (phone, *(p for p in group if p != phone))
    return (phone,)


@dataclass(frozen=True)
class Pronunciation:
    """One word's phones (IPA), other accepted pronunciations, and where they came from (``"cmudict"``/``"g2p"``)."""

    word: str
    phones: tuple[str, ...]
    source: str
    variants: tuple[tuple[str, ...], ...] = ()

    @property
    def all(self) -> tuple[tuple[str, ...], ...]:
        """The main pronunciation first, then the variants."""
        return (self.phones, *self.variants)


def cmudict_path() -> Path:
    """CMUdict as shipped in the ``pocketsphinx`` package (BSD)."""
    pocketsphinx = require("pocketsphinx", "align", "the pronunciation lexicon (CMUdict)")
    return Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"


def read_cmudict(path: Path) -> dict[str, tuple[tuple[str, ...], ...]]:
    """``word -> pronunciations`` (IPA) from a CMUdict file, in file order (``word(2)`` after ``word``)."""
    entries: dict[str, list[tuple[str, ...]]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2 or parts[0].startswith(";;;"):
                continue
            phones = tuple(ARPABET_TO_IPA[p.rstrip("012")] for p in parts[1:] if not p.startswith("#"))
            variants = entries.setdefault(parts[0].split("(")[0], [])
            if phones not in variants:
                variants.append(phones)
    return {word: tuple(v) for word, v in entries.items()}


class HamaG2P:
    """``hama``'s G2P model (Apache-2.0), loaded on first use."""

    def __init__(self) -> None:
        self._model: Any = None

    def __call__(self, word: str) -> tuple[str, ...]:
        if self._model is None:
            hama = require("hama", "align", "G2P for words outside CMUdict")
            self._model = hama.G2PModel()
        result = self._model.predict(word)
        return tuple(a.phoneme for a in result.alignments if a.phoneme.strip())


class Lexicon:
    """Word → :class:`Pronunciation`, from a dictionary with a G2P fallback for unknown words."""

    def __init__(self, entries: Mapping[str, tuple[str, ...] | tuple[tuple[str, ...], ...]],
                 g2p: Callable[[str], tuple[str, ...]] | None) -> None:
        """Args:
            entries: ``word -> phones`` or ``word -> (phones, variant, ...)``.
            g2p: Pronounces words not in ``entries``; ``None`` gives them no phones.
        """
        self._entries: dict[str, tuple[tuple[str, ...], ...]] = {
            w: ((v,) if not v or isinstance(v[0], str) else v) for w, v in entries.items()  # type: ignore[misc]
        }
        self._g2p = g2p
        self._cache: dict[str, Pronunciation] = {}

    @classmethod
    @functools.lru_cache(maxsize=1)
    def default(cls) -> Lexicon:
        """CMUdict from pocketsphinx with hama's G2P fallback (needs ``edgeser[align]``)."""
        return cls(read_cmudict(cmudict_path()), HamaG2P())

    def __contains__(self, word: str) -> bool:
        return word in self._entries

    def pronounce(self, word: str) -> Pronunciation:
        """Phones for ``word`` (lower case, as from :func:`normalize_words`); empty if G2P gives none."""
        if word in self._cache:
            return self._cache[word]
        if word in self._entries:
            first, *rest = self._entries[word]
            pron = Pronunciation(word, first, "cmudict", tuple(rest))
        elif self._g2p is not None:
            pron = Pronunciation(word, self._g2p(word), "g2p")
            log.debug("%r not in the lexicon; G2P gives %s", word, " ".join(pron.phones))
        else:
            pron = Pronunciation(word, (), "none")
        self._cache[word] = pron
        return pron
