"""CTC beam-search decoding with ``pyctcdecode``, built from the vocabulary's explicit blank and delimiter.

pyctcdecode 0.5.0 declares ``numpy<2`` but works with numpy 2; install it without its dependencies:
``pip install --no-deps pyctcdecode==0.5.0 pygtrie``.
"""

from __future__ import annotations

import logging
from typing import Any

from edgeser._optional import require
from edgeser.ctc.emissions import Emissions

log = logging.getLogger(__name__)

INSTALL = "pip install --no-deps pyctcdecode==0.5.0 pygtrie"
_PRIVATE_USE = 0xE000


def _labels(tokens: tuple[str, ...], blank_id: int, delimiter: str | None) -> list[str]:
    """One label per token: "" for the blank, " " for the word delimiter, and a private-use character
    for every other token, so decoded text maps back to token ids exactly (nothing guessed from spellings)."""
    return ["" if i == blank_id else " " if t == delimiter else chr(_PRIVATE_USE + i) for i, t in enumerate(tokens)]


class BeamDecoder:
    """Beam search over one vocabulary; returns the token ids of each decoded word."""

    def __init__(self, emissions_vocab: Any, beam_width: int = 32, kenlm_path: str | None = None) -> None:
        pyctcdecode = require("pyctcdecode", "align", "decoding without a transcript", install=INSTALL)
        self.vocab = emissions_vocab
        self.beam_width = beam_width
        if kenlm_path is not None and self.vocab.kind != "characters":
            raise ValueError("a KenLM model works on words spelled in characters; this vocabulary is "
                             f"{self.vocab.kind}")
        self._kenlm = kenlm_path is not None
        if self._kenlm:
            require("kenlm", "align", "decoding with a KenLM language model", install="pip install kenlm")
        labels = _labels(self.vocab.tokens, self.vocab.blank_id, self.vocab.word_delimiter)
        if self._kenlm:  # real lower-case letters, so the language model sees words
            labels = [lab if len(t) != 1 or i == self.vocab.blank_id else (" " if t == self.vocab.word_delimiter
                      else t.lower()) for i, (t, lab) in enumerate(zip(self.vocab.tokens, labels, strict=True))]
        self._decoder = pyctcdecode.build_ctcdecoder(labels, kenlm_model_path=kenlm_path)
        self._index = {lab: i for i, lab in enumerate(labels) if lab.strip()}

    def __call__(self, emissions: Emissions) -> list[tuple[int, ...]]:
        beams = self._decoder.decode_beams(emissions.log_probs, beam_width=self.beam_width)
        text = beams[0][0] if beams else ""
        return [tuple(self._index[c] for c in word if c in self._index) for word in text.split()]
