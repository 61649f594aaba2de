"""Checkpoints → a verified bundle: export each graph, check parity, write everything atomically."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

import edgeser
from edgeser.audio import load_audio
from edgeser.errors import InputError
from edgeser.model.bundle import (
    DEFAULT_LABELS,
    Bundle,
    HeadSection,
    Manifest,
    SpeechSection,
    TextSection,
    graph_metadata,
)
from edgeser.model.graph_io import speech_feeds
from edgeser.model.writer import BundleWriter, write_bundle
from edgeser.options import SegmentOptions
from edgeser.text import TextTokenizer
from edgeser_export.graphs import (
    FusionGraph,
    TextGraph,
    fusion_example,
    fusion_spec,
    parse_layers,
    speech_graph,
    speech_spec,
    text_spec,
)
from edgeser_export.onnx_export import export_onnx
from edgeser_export.sources import SpeechSource, TextSource
from edgeser_export.validate import check_parity

log = logging.getLogger(__name__)

SAMPLE = Path(edgeser.__file__).parent / "samples" / "kids_talking.wav"
PARITY_SENTENCES = (
    "Kids are talking by the door.",
    "I can't believe you did that again, it's the third time this week!",
    "Oh. Okay.",
    "Well, I guess we'll just have to wait and see what happens tomorrow morning at nine.",
)


def export_bundle(out: str | Path, *, speech: SpeechSource | None = None, text: TextSource | None = None,
                  layers: str = "last", exporter: str = "dynamo", opset: int | None = None, tolerance: float = 1e-3,
                  labels: Sequence[str] = DEFAULT_LABELS, overwrite: bool = False,
                  progress: Callable[[str], None] = log.info) -> Manifest:
    """Export the given encoders into a new bundle at ``out``.

    Each graph is checked against torch on two shapes other than its trace shape; the figures go
    into ``bundle.json``. Nothing is left at ``out`` if any step fails.

    Raises:
        ParityError: An exported graph differs from torch beyond ``tolerance``.
        BundleError: ``out`` exists (without ``overwrite``) or a source is unusable.
    """
    if speech is None and text is None:
        raise InputError("nothing to export: give a speech encoder, a text encoder, or both")
    with write_bundle(out, overwrite=overwrite) as writer:
        speech_section = (_export_speech(speech, writer, layers, exporter, opset, tolerance, progress)
                          if speech else None)
        text_section = _export_text(text, writer, exporter, opset, tolerance, progress) if text else None
        progress("hashing files and writing bundle.json")
        return writer.finish(Manifest(edgeser_version=edgeser.__version__,
                                      created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                      labels=tuple(labels), files={}, speech=speech_section, text=text_section))


def _provenance(source: dict[str, Any], exporter: str, opset: int, parity: dict[str, Any], seconds: float
                ) -> dict[str, Any]:
    versions = {p: importlib_metadata.version(p) for p in ("torch", "transformers", "onnx", "onnxruntime")}
    return {"source": source, "exporter": f"torch.onnx.export ({exporter})", "opset": opset, "versions": versions,
            "parity": parity, "export_seconds": round(seconds, 2)}


def _export_speech(src: SpeechSource, writer: BundleWriter, layers: str, exporter: str, opset: int | None,
                   tolerance: float, progress: Callable[[str], None]) -> SpeechSection:
    t0 = time.perf_counter()
    chosen = parse_layers(layers, src.num_layers)
    spec = speech_spec(src, chosen)
    frames = src.frames
    section = SpeechSection(graph="speech.onnx", spec=spec, frames=frames, hidden_size=src.hidden_size,
                            num_layers=src.num_layers, exposed_layers=chosen,
                            normalize_input=src.normalize_input, uses_attention_mask=src.uses_attention_mask,
                            ctc=src.vocab, architecture=src.architecture, front_end=src.front_end,
                            max_samples=src.max_samples)
    module = speech_graph(src, chosen)
    rng = np.random.default_rng(0)
    sample = load_audio(SAMPLE, target_rate=src.sample_rate)

    def feeds(lengths: Sequence[int]) -> dict[str, np.ndarray]:
        waves = [np.resize(sample, n) + 0.01 * rng.standard_normal(n).astype(np.float32) for n in lengths]
        return speech_feeds(waves, section)[0]

    second = int(src.sample_rate)
    progress(f"exporting speech encoder ({exporter}, {src.description.get('parameters', 0) / 1e6:.1f}M parameters)")
    used_opset = export_onnx(module, spec, feeds([second, second]), writer.path(section.graph), exporter=exporter,
                             opset=opset, dim_min={"samples": frames.receptive_field, "batch": 1},
                             metadata=graph_metadata(section))
    progress("checking speech graph against torch")
    cases = [feeds([int(1.5 * second) - 83]), feeds([int(2.5 * second), int(1.9 * second) + 7, int(0.6 * second)])]
    parity = check_parity(module, writer.path(section.graph), spec, cases, tolerance)
    provenance = _provenance(src.description, exporter, used_opset, parity, time.perf_counter() - t0)
    if src.architecture == "whisper":
        from edgeser_export.whisper import frame_cosine

        speech_clip, clip_name = _real_speech(src.sample_rate)
        provenance["unpadded_vs_30s_padded"] = {
            "clip": clip_name, "seconds": round(speech_clip.size / src.sample_rate, 2),
            "mean_frame_cosine_by_layer": frame_cosine(module, speech_clip)}  # type: ignore[arg-type]
    return SpeechSection(**{**section.__dict__, "provenance": provenance})


RAVDESS_CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess" / "audio" / "Actor_01"


def _real_speech(rate: int) -> tuple[np.ndarray, str]:
    """A clip of real speech for the padded-versus-unpadded check: a RAVDESS recording where ../shared/data is
    present (a development checkout), else the bundled (synthesised) sample; the bundle records which."""
    clips = sorted(RAVDESS_CLIP.glob("03-01-05-*.flac")) if RAVDESS_CLIP.is_dir() else []
    path = clips[0] if clips else SAMPLE
    name = f"RAVDESS {path.parent.name}/{path.name} (real speech)" if clips else f"{path.name} (espeak-ng, synthetic)"
    return load_audio(path, target_rate=rate), name


def _export_text(src: TextSource, writer: BundleWriter, exporter: str, opset: int | None, tolerance: float,
                 progress: Callable[[str], None]) -> TextSection:
    t0 = time.perf_counter()
    tok = src.tokenizer
    tokenizer_file = writer.path("tokenizer.json")
    tok.backend_tokenizer.save(str(tokenizer_file))
    spec = text_spec(src)
    section = TextSection(graph="text.onnx", tokenizer="tokenizer.json", spec=spec,
                          hidden_size=int(src.model.config.hidden_size), max_tokens=src.max_tokens,
                          pad_id=int(tok.pad_token_id), pad_token=str(tok.pad_token),
                          unk_token=str(tok.unk_token) if tok.unk_token is not None else None)
    runtime_tokenizer = TextTokenizer(tokenizer_file, max_tokens=src.max_tokens, pad_id=section.pad_id,
                                      pad_token=section.pad_token, unk_token=section.unk_token)

    def feeds(texts: Sequence[str]) -> dict[str, np.ndarray]:
        all_feeds, _ = runtime_tokenizer(texts)
        return {name: all_feeds[name] for name in spec.input_names}

    progress(f"exporting text encoder ({exporter}, {src.description.get('parameters', 0) / 1e6:.1f}M parameters)")
    module = TextGraph(src.model).eval()
    used_opset = export_onnx(module, spec, feeds(PARITY_SENTENCES[1:3]), writer.path(section.graph),
                             exporter=exporter, opset=opset, metadata=graph_metadata(section))
    progress("checking text graph against torch")
    cases = [feeds(PARITY_SENTENCES[:1]), feeds([PARITY_SENTENCES[3], PARITY_SENTENCES[2], PARITY_SENTENCES[0]])]
    parity = check_parity(module, writer.path(section.graph), spec, cases, tolerance)
    provenance = _provenance(src.description, exporter, used_opset, parity, time.perf_counter() - t0)
    return TextSection(**{**section.__dict__, "provenance": provenance})


FUSION_TRACE = {"frame": 40, "phone": 12, "syllable": 6, "word": 5, "text": 9}
FUSION_CASES = ({"frame": 97, "phone": 31, "syllable": 13, "word": 7, "text": 14},
                {"frame": 12, "phone": 4, "syllable": 3, "word": 2, "text": 5})


def add_fusion(source: str | Path, model: Any, out: str | Path, *, layer: int, provenance: dict[str, Any],
               segmenter: str = "bundle", exporter: str = "dynamo", tolerance: float = 1e-4, overwrite: bool = False,
               boundaries: dict[str, Any] | None = None, speaker_model: Any = None,
               speaker_provenance: dict[str, Any] | None = None, frame_mask: str = "all", temperature: float = 1.0,
               progress: Callable[[str], None] = log.info) -> Manifest:
    """A new bundle at ``out``: the files of ``source`` plus the fusion graph of ``model`` (a FusionModel) and,
    when given, ``speaker_model``: the head for enrolled speakers (trained on frames z-scored with each
    speaker's own statistics, :mod:`edgeser.speaker`), as ``fusion_speaker.onnx``.

    Each graph is checked against torch on two shapes other than the trace shape, as the encoders are.
    ``boundaries`` is the boundary rule the training segments were cut with (recorded, and used when
    predicting); by default the library's current rule, which is what ``edgeser_export.features`` uses.
    ``frame_mask`` is the frames both heads were trained on (``"voiced"`` or ``"all"``, as
    ``edgeser_export.features.compute`` was asked): prediction pools the same.
    """
    if boundaries is None:
        boundaries = SegmentOptions().boundary_rule()
    src = Bundle.load(source)
    c = model.config
    if src.manifest.speech is None and c.levels:
        raise InputError(f"{source}: the fusion model uses speech levels but the bundle has no speech encoder")
    if c.levels and src.manifest.speech is not None and c.speech_dim != src.manifest.speech.hidden_size:
        raise InputError(f"fusion speech_dim {c.speech_dim} != the bundle's speech hidden size "
                         f"{src.manifest.speech.hidden_size}")
    with write_bundle(out, overwrite=overwrite) as writer:
        for name in src.manifest.files:
            shutil.copy2(src.path / name, writer.path(name))

        def export_head(head: Any, graph_name: str, record: dict[str, Any]) -> HeadSection:
            hc = head.config
            graph, spec = FusionGraph(head.eval()).eval(), fusion_spec(head)
            section = HeadSection(graph=graph_name, spec=spec, levels=tuple(hc.levels), uses_text=hc.use_text,
                                    layer=layer, segmenter=segmenter, boundaries=boundaries, frame_mask=frame_mask,
                                    temperature=temperature)
            progress(f"exporting {graph_name} ({exporter})")
            t0 = time.perf_counter()
            opset = export_onnx(graph, spec, fusion_example(head, 2, FUSION_TRACE), writer.path(section.graph),
                                exporter=exporter, metadata=graph_metadata(section))
            cases = [fusion_example(head, 1, FUSION_CASES[0], seed=1), fusion_example(head, 3, FUSION_CASES[1], seed=2)]
            parity = check_parity(graph, writer.path(section.graph), spec, cases, tolerance)
            return HeadSection(**{**section.__dict__, "provenance": {
                **record, "config": hc.to_dict(), "exporter": f"torch.onnx.export ({exporter})", "opset": opset,
                "parity": parity, "export_seconds": round(time.perf_counter() - t0, 2)}})

        section = export_head(model, "fusion.onnx", provenance)
        speaker = (export_head(speaker_model, "fusion_speaker.onnx", speaker_provenance or provenance)
                   if speaker_model is not None else None)
        progress("hashing files and writing bundle.json")
        return writer.finish(Manifest(edgeser_version=edgeser.__version__,
                                      created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                      labels=tuple(c.labels), files={}, speech=src.manifest.speech,
                                      text=src.manifest.text, fusion=section, speaker_fusion=speaker))
