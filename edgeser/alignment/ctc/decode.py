"""CTC beam-search decoding, built from the vocabulary's explicit blank and delimiter.

The beam search is ``ctc-beam-decoder`` (Apache-2.0, C++ with numpy only): a drop-in for pyctcdecode, whose only
release (0.5.0, 2023) declares ``numpy<2`` so that no resolver can install it beside numpy 2 without ``--no-deps``.
Its top beams are pyctcdecode's on the cases compared in ``tests/test_segmenter.py`` (where both are installed).
It ships wheels for x86-64 Linux only; elsewhere (a Jetson, aarch64) build it from its source (CMake), or
install pyctcdecode with ``pip install --no-deps pyctcdecode==0.5.0 pygtrie``, which is used when
ctc-beam-decoder is absent.
"""

from __future__ import annotations

import functools
import importlib
import logging
from typing import Any

from edgeser.alignment.ctc.emissions import Emissions
from edgeser.errors import BackendError, BackendUnavailableError, InputError

log = logging.getLogger(__name__)

INSTALL = ('pip install "edgeser[align]" (ctc-beam-decoder, x86-64 Linux wheels), or elsewhere: pip install '
           '--no-deps pyctcdecode==0.5.0 pygtrie')
BACKENDS = ("ctc_beam_decoder", "pyctcdecode")
"""Beam-search libraries in the order they are tried (same API: ``build_ctcdecoder(labels, kenlm_model_path)``,
``decode_beams(log_probs, beam_width)``)."""


def backend() -> Any:
    """The first importable module of :data:`BACKENDS`."""
    for name in BACKENDS:
        try:
            return importlib.import_module(name)
        except (ImportError, OSError):  # OSError: a wheel whose shared library cannot load here
            continue
    raise BackendUnavailableError(f"decoding without a transcript needs a CTC beam-search decoder: {INSTALL}")
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
        library = backend()
        self.vocab = emissions_vocab
        self.beam_width = beam_width
        if kenlm_path is not None and self.vocab.kind != "characters":
            raise InputError("a KenLM model works on words spelled in characters; this vocabulary is "
                             f"{self.vocab.kind}")
        self._kenlm = kenlm_path is not None
        if self._kenlm and library.__name__ == "pyctcdecode":
            from edgeser._optional import require

            require("kenlm", "align", "decoding with a KenLM language model", install="pip install kenlm")
        labels = _labels(self.vocab.tokens, self.vocab.blank_id, self.vocab.word_delimiter, spelled=self._kenlm)
        try:
            self._decoder = library.build_ctcdecoder(labels, kenlm_model_path=kenlm_path)
        except (OSError, RuntimeError) as e:  # its shared library cannot load, or was built without KenLM
            raise BackendError(f"the beam decoder ({library.__name__}) cannot be built here: {e}") from e
        self._index = {lab: i for i, lab in enumerate(labels) if lab.strip()}

    def __call__(self, emissions: Emissions) -> list[tuple[int, ...]]:
        beams = self._decoder.decode_beams(emissions.log_probs, beam_width=self.beam_width)
        text = beams[0][0] if beams else ""
        return [tuple(self._index[c] for c in word if c in self._index) for word in text.split()]


@functools.lru_cache(maxsize=8)
def beam_decoder(vocab: Any, beam_width: int = 32, kenlm_path: str | None = None) -> BeamDecoder:
    """A :class:`BeamDecoder`, built once per vocabulary and setting (building one takes a few hundred ms)."""
    return BeamDecoder(vocab, beam_width, kenlm_path)
