"""Feeds for each graph of a bundle, from a calibration set: ``{input_name: ndarray}`` per utterance.

That is the form ONNX Runtime's ``CalibrationDataReader``, Polygraphy's data loaders and ModelOpt's
calibration loops all take. :class:`OrtReader` adapts any of these iterables to ONNX Runtime.

- speech: the waveform as the runtime feeds it (normalised, with its attention mask where the graph has one);
- text: the transcript's tokens (items without a transcript are skipped);
- fusion: the pooled speech levels and text embeddings that the FP32 encoders give for the utterance
  (segmented with the transcript where there is one, decoded otherwise; for a head that reads voiced frames, the
  speech span's voiced frames), as :meth:`EmotionRecognizer.predict`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from edgeser import EmotionRecognizer
from edgeser.alignment.pooling import level_features
from edgeser.errors import BundleError, DatasetError, EdgeserError, InputError
from edgeser.model.graph_io import speech_feeds
from edgeser_calibration.sets import CalibrationSet

Feeds = dict[str, np.ndarray]


def speech(cset: CalibrationSet, rec: EmotionRecognizer) -> Iterator[Feeds]:
    for wave in cset.waves():
        feeds, _ = speech_feeds([wave], rec.speech)
        yield feeds


def text(cset: CalibrationSet, rec: EmotionRecognizer) -> Iterator[Feeds]:
    section = rec.bundle.manifest.text
    if section is None:
        raise BundleError(f"{rec.bundle.path}: no text encoder to calibrate")
    transcripts = [it.transcript for it in cset.items if it.transcript]
    if not transcripts:
        raise DatasetError(f"{cset.root}: no item has a transcript, so the text encoder cannot be calibrated")
    for t in transcripts:
        yield rec._text_feeds(t)


def fusion(cset: CalibrationSet, rec: EmotionRecognizer) -> Iterator[Feeds]:
    head, section = rec.head, rec.bundle.manifest.fusion
    if head is None or section is None:
        raise BundleError(f"{rec.bundle.path}: no emotion head to calibrate")
    for i, item in enumerate(cset.items):
        wave = cset.audio(i)
        if section.frame_mask == "voiced":  # what predict feeds such a head: the speech span's voiced frames
            encoded, keep = rec.encode_speech(wave)
            levels = level_features(encoded.hidden_states[:, section.layer], encoded.num_frames, [],
                                    rec.speech.frames, section.levels, voiced=keep[None])
            yield head.feeds(levels, None)
            continue
        encoded = rec.encode(wave, sample_rate=16000)
        try:
            seg = rec._segment_for_fusion(encoded, wave, item.transcript)
        except EdgeserError:  # a transcript that cannot be aligned: skip the item, as training would
            continue
        levels = level_features(encoded.hidden_states[:, section.layer], encoded.num_frames, [seg],
                                rec.speech.frames, section.levels)
        text_in = None
        if section.uses_text:
            embedded = rec.embed_text(rec._fusion_transcript(seg, item.transcript))
            text_in = (embedded.token_embeddings, embedded.token_mask)
        yield head.feeds(levels, text_in)


READERS = {"speech": speech, "text": text, "fusion": fusion}


class OrtReader:
    """``onnxruntime.quantization.CalibrationDataReader`` over an iterable of feeds (materialised once, so
    ``rewind`` works for multi-pass calibration methods; entropy and percentile also need
    :meth:`equal_lengths`)."""

    def __init__(self, feeds: Iterable[Feeds], only: Iterable[str] | None = None) -> None:
        keep = set(only) if only is not None else None
        self._data = [{k: v for k, v in f.items() if keep is None or k in keep} for f in feeds]
        if not self._data:
            raise DatasetError("the calibration set gave no feeds for this graph")
        self._pos = 0
        self.on_next: Callable[[int], None] | None = None
        """Called with the number of feeds given so far in this pass (a progress line during ORT's calibration)."""

    def get_next(self) -> Feeds | None:
        if self._pos >= len(self._data):
            return None
        self._pos += 1
        if self.on_next is not None:
            self.on_next(self._pos)
        return self._data[self._pos - 1]

    def rewind(self) -> None:
        self._pos = 0

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[Feeds]:
        return iter(self._data)

    def equal_lengths(self) -> OrtReader:
        """The feeds cut along their time axis (axis 1, after the batch of one) into windows of the shortest
        feed's length, as many whole windows of each feed as it holds (this reader itself where they are all of
        one length already).

        ONNX Runtime's histogram calibrators (``entropy``, ``percentile``) stack each tensor's values over every
        feed into one array before they count them, which fails on feeds of different lengths; windows of one
        length give it real audio (or tokens, or frames) of one shape. Raises :class:`DatasetError` where a
        feed's inputs disagree on that length (a head fed frames and words)."""
        lengths = []
        for i, feed in enumerate(self._data):
            times = {v.shape[1] for v in feed.values() if v.ndim >= 2}
            if len(times) != 1:
                raise DatasetError(f"calibration feed {i}: its inputs have time axes of lengths {sorted(times)}, so "
                                   "it cannot be cut into windows of one length; use --method minmax")
            lengths.append(times.pop())
        n = min(lengths)
        if n < 1:
            raise DatasetError("a calibration feed is empty; use --method minmax or drop it from the set")
        if max(lengths) == n:  # already of one length (windows already cut): nothing to copy
            return self
        out = OrtReader([{k: v[:, j * n : (j + 1) * n] if v.ndim >= 2 else v for k, v in feed.items()}
                         for feed, m in zip(self._data, lengths, strict=True) for j in range(m // n)])
        out.on_next = self.on_next
        return out

    def set_range(self, start_index: int, end_index: int) -> None:  # ORT's interface, for stride calibration
        self._data = self._data[start_index:end_index]
        self._pos = 0


def feeds_for(graph: str, cset: CalibrationSet, rec: EmotionRecognizer,
              each: Callable[[Iterable[Any]], Iterable[Any]] = lambda feeds: feeds) -> OrtReader:
    """An :class:`OrtReader` for the bundle's ``graph`` (``speech``, ``text`` or ``fusion``); ``each`` wraps the
    feeds as they are made (a progress ticker's ``over``, say)."""
    if graph not in READERS:
        raise InputError(f"graph must be one of {sorted(READERS)}, got {graph!r}")
    reader: Any = READERS[graph]
    return OrtReader(each(reader(cset, rec)))
