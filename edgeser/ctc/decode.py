"""CTC beam-search decoding with ``pyctcdecode``, built from the vocabulary's explicit blank and delimiter.

pyctcdecode 0.5.0 declares ``numpy<2`` but works with numpy 2; install it without its dependencies:
``pip install --no-deps pyctcdecode==0.5.0 pygtrie``.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from edgeser._optional import require
from edgeser.ctc.emissions import Emissions
from edgeser.errors import InputError

log = logging.getLogger(__name__)

INSTALL = "pip install --no-deps pyctcdecode==0.5.0 pygtrie"
_PRIVATE_USE = 0xE000


def _labels(tokens: tuple[str, ...], blank_id: int, delimiter: str | None, spelled: bool = False) -> list[str]:
    """One label per token: "" for the blank, " " for the word delimiter, and a private-use character for
    every other token, so decoded text maps back to token ids exactly (nothing guessed from spellings).
    With ``spelled``, single-character tokens keep their lower-case spelling, so a language model sees words."""
    labels = []
    for i, t in enumerate(tokens):
        if i == blank_id:
            labels.append("")
        elif t == delimiter:
            labels.append(" ")
        elif spelled and len(t) == 1:
            labels.append(t.lower())
        else:
            labels.append(chr(_PRIVATE_USE + i))
    named = [lab for lab in labels if lab.strip()]
    if len(set(named)) != len(named):
        raise InputError("two tokens share a lower-case spelling; decode without a language model")
    return labels


class BeamDecoder:
    """Beam search over one vocabulary; returns the token ids of each decoded word."""

    def __init__(self, emissions_vocab: Any, beam_width: int = 32, kenlm_path: str | None = None) -> None:
        pyctcdecode = require("pyctcdecode", "align", "decoding without a transcript", install=INSTALL)
        self.vocab = emissions_vocab
        self.beam_width = beam_width
        if kenlm_path is not None and self.vocab.kind != "characters":
            raise InputError("a KenLM model works on words spelled in characters; this vocabulary is "
                             f"{self.vocab.kind}")
        self._kenlm = kenlm_path is not None
        if self._kenlm:
            require("kenlm", "align", "decoding with a KenLM language model", install="pip install kenlm")
        labels = _labels(self.vocab.tokens, self.vocab.blank_id, self.vocab.word_delimiter, spelled=self._kenlm)
        self._decoder = pyctcdecode.build_ctcdecoder(labels, kenlm_model_path=kenlm_path)
        self._index = {lab: i for i, lab in enumerate(labels) if lab.strip()}

    def __call__(self, emissions: Emissions) -> list[tuple[int, ...]]:
        beams = self._decoder.decode_beams(emissions.log_probs, beam_width=self.beam_width)
        text = beams[0][0] if beams else ""
        return [tuple(self._index[c] for c in word if c in self._index) for word in text.split()]


@functools.lru_cache(maxsize=8)
def beam_decoder(vocab: Any, beam_width: int = 32, kenlm_path: str | None = None) -> BeamDecoder:
    """A :class:`BeamDecoder`, built once per vocabulary and setting (building one takes a few hundred ms)."""
    return BeamDecoder(vocab, beam_width, kenlm_path)
