"""The default aligner: ``hama``'s phoneme CTC recognizer (Apache-2.0), also the default model's segmenter.

Its vocabulary is IPA with a ``<wb>`` word-boundary token and a ``<blank>``; one frame is 320
samples at 16 kHz. The recognizer silently stops at 30 s of audio, so longer audio is fed in chunks of at most
20 s, each cut at the quietest 20 ms of its last 5 s (a pause, where speech has one), and trimmed to exactly one
frame per 320 samples (the recognizer gives one more per call, which put every later time 20 ms late per
chunk). Decoding marks long pauses as word boundaries (:meth:`Emissions.pause_marked`), so words do not run
across a cut or a silence.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from edgeser._optional import require
from edgeser.alignment.ctc.emissions import Emissions
from edgeser.audio import SAMPLE_RATE
from edgeser.errors import BackendError
from edgeser.model.bundle import CtcVocab

FRAME_SAMPLES = 320
CHUNK_SAMPLES = 20 * SAMPLE_RATE  # well under hama's 30 s limit; a multiple of FRAME_SAMPLES
_SEARCH = 5 * SAMPLE_RATE  # each cut is the quietest frame in the last 5 s of its chunk
_MIN_LAST_CHUNK = SAMPLE_RATE  # a shorter tail joins the chunk before it


def chunk_bounds(wave: np.ndarray) -> list[int]:
    """Where to cut ``wave``: sample indices (inner ones multiples of FRAME_SAMPLES), first 0, last ``wave.size``."""
    bounds, start = [0], 0
    while wave.size - start > CHUNK_SAMPLES:
        lo = start + CHUNK_SAMPLES - _SEARCH
        frames = wave[lo : start + CHUNK_SAMPLES].reshape(-1, FRAME_SAMPLES)
        cut = lo + int(np.argmin(np.mean(frames.astype(np.float64) ** 2, axis=1))) * FRAME_SAMPLES
        if wave.size - cut < _MIN_LAST_CHUNK:
            break
        bounds.append(cut)
        start = cut
    bounds.append(wave.size)
    return bounds


class HamaAligner:
    """Phoneme CTC emissions from ``hama.ASRModel`` (needs ``edgeser[align]``)."""

    name = "hama phoneme CTC (hama.ASRModel, IPA)"

    def __init__(self) -> None:
        hama = require("hama", "align", "the default phoneme aligner")
        self._model: Any = hama.ASRModel()
        tokens = tuple(self._model.decoder_tokens)
        self.vocab = CtcVocab(tokens=tokens, blank_id=tokens.index("<blank>"), word_delimiter="<wb>",
                              unk_token="<unk>", kind="phonemes")
        # the graph's tensor names, from its public session (hama keeps its own resolved names private)
        session = self._model.session
        inputs = [n.name for n in session.get_inputs()]
        outputs = [n.name for n in session.get_outputs()]
        self._inputs = (_tensor(inputs, "waveform"), _tensor(inputs, "waveform_lengths", "waveform_length"))
        self._outputs = [_tensor(outputs, "log_probs"), _tensor(outputs, "out_lengths")]

    def _run(self, wave: np.ndarray) -> np.ndarray:
        feeds = {self._inputs[0]: wave[None, :].astype(np.float32),
                 self._inputs[1]: np.array([wave.size], dtype=np.int64)}
        log_probs, lengths = self._model.session.run(self._outputs, feeds)
        return np.asarray(log_probs[0, : int(np.asarray(lengths).reshape(-1)[0])], dtype=np.float32)

    def emissions(self, wave: np.ndarray) -> Emissions:
        """Emissions for 16 kHz mono audio of any length (chunked below hama's 30 s limit, see the module)."""
        bounds = chunk_bounds(wave)
        spans = list(itertools.pairwise(bounds))
        parts = [self._run(np.clip(wave[a:b], -1.0, 1.0)) for a, b in spans]
        parts = [p[: (b - a) // FRAME_SAMPLES] for p, (a, b) in zip(parts[:-1], spans, strict=False)] + parts[-1:]
        return Emissions(np.concatenate(parts), self.vocab, hop_s=FRAME_SAMPLES / SAMPLE_RATE)


def _tensor(names: list[str], *wanted: str) -> str:
    """The graph tensor called one of ``wanted`` (or ``wanted.<suffix>``, as some exporters name them)."""
    for w in wanted:
        if w in names:
            return w
    for w in wanted:
        for name in names:
            if name.startswith(w + "."):
                return name
    raise BackendError(f"hama's recognizer graph has no tensor {wanted[0]!r} (it has {names}); this edgeser is tested "
                       "with hama 1.7.0")
