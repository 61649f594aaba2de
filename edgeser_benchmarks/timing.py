"""Timing speech encoders side by side: the runtime's speech graphs and, as the peer a user would pick,
CTranslate2's ``encode()`` of a packaged Whisper (faster-whisper's engine), on clips of real speech.

Used by ``edgeser bench`` (:mod:`edgeser_benchmarks.suite`), :mod:`edgeser_benchmarks.int8_schemes` and the studies.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from edgeser import EmotionRecognizer, RuntimeOptions
from edgeser.audio import load_audio
from edgeser.datasets import Dataset
from edgeser.errors import BundleError
from edgeser_benchmarks.stats import latency_summary, time_interleaved


def clips(ds: Dataset, files: int = 6, trim: int = 0) -> dict[str, np.ndarray]:
    """1, 4 and 10 s of real speech: the first ``files`` RAVDESS files, less ``trim`` samples at each end (mostly
    silence), joined end to end."""
    speech = np.concatenate([load_audio(u.path)[trim:-trim or None] for u in ds.utterances[:files]
                             if u.path is not None])
    return {f"{s}s": np.ascontiguousarray(speech[: s * 16000]) for s in (1, 4, 10)}


def speech_clips(ds: Dataset) -> dict[str, np.ndarray]:
    """1, 4 and 10 s of speech: RAVDESS files without their first and last 0.8 s (mostly silence), joined."""
    return clips(ds, files=8, trim=12_800)


def same(wave: np.ndarray) -> np.ndarray:
    return wave


def encode(rec: EmotionRecognizer, wave: np.ndarray) -> object:
    return rec.encode(wave, sample_rate=16000)


class Engine:
    """One thing to time: ``prepare`` (untimed) turns a clip into the input that ``run`` (timed) takes."""

    def __init__(self, prepare: Callable[[np.ndarray], Any], run: Callable[[Any], Any]) -> None:
        self.prepare, self.run = prepare, run


def ct2_engines(packaged: str, work: Path, threads: int) -> dict[str, Engine]:
    """CTranslate2's ``encode()`` of a packaged Whisper (``edgeser_export.whisper.PACKAGED``) on ``threads`` threads, on
    its 30 s window (what faster-whisper runs) and unpadded; log-mel features (transformers'
    ``WhisperFeatureExtractor``) computed untimed. Empty when ctranslate2, transformers or the model is missing."""
    try:
        import ctranslate2  # type: ignore[import-untyped]
        from transformers import WhisperFeatureExtractor
    except ImportError:
        return {}
    folder = ct2_folder(packaged, work)
    if folder is None:
        return {}
    fe = WhisperFeatureExtractor(feature_size=80)  # type: ignore[no-untyped-call]
    model = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32", intra_threads=threads)
    short = packaged.removeprefix("whisper-")
    out = {}
    for pad, kwargs in (("30 s window", {}), ("unpadded", {"padding": "do_not_pad"})):
        def prepare(w: np.ndarray, kwargs: dict[str, Any] = kwargs) -> Any:
            f = fe(w, sampling_rate=16000, return_tensors="np", **kwargs).input_features
            return ctranslate2.StorageView.from_array(np.ascontiguousarray(f, dtype=np.float32))

        out[f"CTranslate2 {short} encode(), {pad} (fp32)"] = Engine(prepare, lambda f: model.encode(f, to_cpu=True))
    return out


def latency(engines: dict[str, Engine], audio: dict[str, np.ndarray], repeats: int) -> dict[str, Any]:
    """Per clip length, p50 ms and paired ratios of every engine against the first one."""
    out: dict[str, Any] = {}
    for clip, wave in audio.items():
        inputs = {k: e.prepare(wave) for k, e in engines.items()}
        times = time_interleaved({k: partial(e.run, inputs[k]) for k, e in engines.items()}, repeats)
        out[clip] = latency_summary(times, next(iter(engines)), "ratio_to_first")
    return out


def ct2_folder(name: str, work: Path) -> Path | None:
    """A CTranslate2 folder for a packaged Whisper (the split base model joined once into ``work``); ``None``
    when it is not installed."""
    from edgeser_export.whisper import PACKAGED, packaged_files

    if name not in PACKAGED:
        return None
    try:
        parts, config = packaged_files(name)
    except BundleError:
        return None
    if len(parts) == 1:
        return parts[0].parent
    folder = work / f"ct2-{name}"
    if not (folder / "model.bin").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.bin").write_bytes(b"".join(p.read_bytes() for p in parts))
        for f in ("config.json", "tokenizer.json", "vocabulary.json"):
            if (config / f).is_file():
                (folder / f).write_bytes((config / f).read_bytes())
    return folder


def encoder_latency(bundles: dict[str, str | Path], ds: Dataset, reference: str, repeats: int) -> dict[str, Any]:
    """Each bundle's speech graph on 1, 4 and 10 s of speech, 1 thread, interleaved: p50 and ratio to
    ``reference`` (under ``ratio_to_fp32``)."""
    recs = {n: EmotionRecognizer.from_bundle(p, RuntimeOptions.cpu(threads=1)) for n, p in bundles.items()}
    latency: dict[str, Any] = {}
    for clip, wave in speech_clips(ds).items():
        times = time_interleaved({n: partial(r.encode, wave, sample_rate=16000) for n, r in recs.items()}, repeats)
        latency[clip] = latency_summary(times, reference, "ratio_to_fp32")
    return latency
