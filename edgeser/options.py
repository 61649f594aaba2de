"""Runtime options: a frozen dataclass validated on creation, with named presets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from edgeser.errors import InputError


@dataclass(frozen=True)
class RuntimeOptions:
    """How the runtime executes a bundle.

    Attributes:
        threads: Intra-op threads per graph; 0 lets ONNX Runtime choose (all cores).
        providers: ONNX Runtime execution providers in order of preference.
        max_audio_s: Longest audio accepted by one call; longer input raises ``AudioError``.
        max_text_tokens: Text longer than this many tokens is truncated (with a warning).
        verify_hashes: Check every bundle file's sha256 on load (costs ~1 s per 400 MB).
        backend: ``"onnxruntime"`` runs the ONNX graphs; ``"tensorrt"`` runs the bundle's TensorRT engines
            (``edgeser engines``) and ONNX Runtime for graphs without one. TensorRT is untested here.
        provider_options: Options per ONNX Runtime provider, ``((provider, ((key, value), ...)), ...)``.
        bundle_digest: Refuse any bundle but the one with this digest (``sha256:...``, as `edgeser inspect` prints).
        trusted_keys: Refuse any bundle not signed by one of these public keys (``ed25519:...``, the text of a
            ``.pub`` file from `edgeser keygen`; see :mod:`edgeser.model.signing`).
        min_confidence: Abstain below this: a prediction whose top (calibrated) probability is lower says
            ``"uncertain"`` as its label and keeps its probabilities (never a silent drop); ``None``: always a label.
    """

    threads: int = 0
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    max_audio_s: float = 60.0
    max_text_tokens: int = 128
    verify_hashes: bool = True
    backend: str = "onnxruntime"
    provider_options: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    bundle_digest: str | None = None
    trusted_keys: tuple[str, ...] = ()
    min_confidence: float | None = None

    def __post_init__(self) -> None:
        if self.min_confidence is not None and not 0 < self.min_confidence <= 1:
            raise InputError(f"min_confidence must be in (0, 1], got {self.min_confidence}")
        if self.bundle_digest is not None and not self.bundle_digest.startswith("sha256:"):
            raise InputError(f"bundle_digest must read 'sha256:<hex>' as `edgeser inspect` prints it, got "
                             f"{self.bundle_digest[:20]!r}")
        if isinstance(self.trusted_keys, str):
            raise InputError("trusted_keys must be a tuple of public keys, not a single string")
        if self.threads < 0:
            raise InputError(f"threads must be >= 0 (0 = automatic), got {self.threads}")
        if not self.providers:
            raise InputError("providers must name at least one execution provider")
        if isinstance(self.providers, str):
            raise InputError("providers must be a tuple of names, not a single string")
        if not self.max_audio_s > 0:
            raise InputError(f"max_audio_s must be positive, got {self.max_audio_s}")
        if self.backend not in ("onnxruntime", "tensorrt"):
            raise InputError(f"backend must be 'onnxruntime' or 'tensorrt', got {self.backend!r}")
        if self.max_text_tokens < 2:
            raise InputError(f"max_text_tokens must be >= 2, got {self.max_text_tokens}")

    @classmethod
    def cpu(cls, threads: int = 0) -> RuntimeOptions:
        """ONNX Runtime on the CPU (the default everywhere)."""
        return cls(threads=threads, providers=("CPUExecutionProvider",))

    @classmethod
    def cuda(cls) -> RuntimeOptions:
        """ONNX Runtime's CUDA provider with CPU fallback (needs onnxruntime-gpu; untested here)."""
        return cls(providers=("CUDAExecutionProvider", "CPUExecutionProvider"))

    @classmethod
    def ort_tensorrt(cls, cache_dir: str = "~/.cache/edgeser/ort-trt", fp16: bool = False) -> RuntimeOptions:
        """ONNX Runtime's TensorRT provider (engines built and cached by ONNX Runtime itself), then CUDA, then
        CPU. Needs onnxruntime-gpu built with TensorRT (on Jetson: the wheel for your JetPack). Untested here."""
        from pathlib import Path

        cache = str(Path(cache_dir).expanduser())
        trt = (("trt_engine_cache_enable", "True"), ("trt_engine_cache_path", cache),
               ("trt_timing_cache_enable", "True"), ("trt_timing_cache_path", cache),
               ("trt_fp16_enable", str(fp16)))
        return cls(providers=("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
                   provider_options=(("TensorrtExecutionProvider", trt),))

    @classmethod
    def tensorrt(cls) -> RuntimeOptions:
        """The bundle's own TensorRT engines (``edgeser engines``); ONNX Runtime on CUDA for graphs without one.
        Untested here: no GPU has been lent to this project."""
        return cls(backend="tensorrt", providers=("CUDAExecutionProvider", "CPUExecutionProvider"))

    @classmethod
    def named(cls, backend: str = "cpu", threads: int = 0, **changes: Any) -> RuntimeOptions:
        """The preset called ``backend`` in :data:`BACKENDS` (what every command's ``--backend`` takes) with
        ``threads`` and any other field ``changes``."""
        if backend not in BACKENDS:
            raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        preset: RuntimeOptions = getattr(cls, BACKENDS[backend])()
        return replace(preset, threads=threads, **changes)


BACKENDS = {"cpu": "cpu", "cuda": "cuda", "ort-tensorrt": "ort_tensorrt", "tensorrt": "tensorrt"}
"""``--backend`` names and their :class:`RuntimeOptions` presets: ONNX Runtime on the CPU (the default), its CUDA
or TensorRT provider, or the bundle's own TensorRT engines (``edgeser engines``). Only ``cpu`` has been run by
this project."""


BOUNDARY_RULE_FIELDS = ("start_shift_s", "start_shift_by_class", "overlap_s", "end_shift_s", "final_end_shift_s",
                        "final_end_scale", "phone_shift_s")
"""The :class:`SegmentOptions` fields that place boundaries (a head trained on pooled segments records them)."""


@dataclass(frozen=True)
class SegmentOptions:
    """How audio is cut into words, syllables and phones.

    CTC spikes come late (about 90 ms at word starts for the default aligner), and how late depends on
    the sound that starts the word: a sibilant's spike sits well into its hiss, a vowel's near its onset.
    The boundary rule moves each word start earlier by the shift of its first phone's class, never further
    than ``overlap_s`` before the previous word's last aligned frame; each word end later by
    ``end_shift_s``, never past the next word's start. The last word's end, whose decay CTC never marks,
    moves by ``final_end_shift_s`` plus ``final_end_scale`` times the word's aligned length (utterance-final
    lengthening: the slower the final word, the longer its last sound fades). The defaults were chosen
    against pocketsphinx on RAVDESS actors 01-10 (24 files each) and are reported on actors 11-20
    (``edgeser_benchmarks/studies/align_agreement.py``); RAVDESS has no word starting with a nasal or an approximant, so
    those classes use ``start_shift_s``, and its sibilant and fricative classes each rest on one word
    ("sitting", "the"). Other CTC models may need their own values.

    Attributes:
        start_shift_s: Word-start shift for first-phone classes not in ``start_shift_by_class`` (and for
            character CTC, where the first phone is not aligned).
        start_shift_by_class: ``((class, seconds), ...)`` with classes from
            :func:`edgeser.alignment.phonetics.manner` (vowel, stop, sibilant, fricative, nasal, approximant).
        overlap_s: How far a start may move before the previous word's last aligned frame.
        end_shift_s: Word-end shift inside an utterance.
        final_end_shift_s: Word-end shift of the last word; may be negative (the scaled term usually
            outweighs it), though the end never moves before the end of the word's first aligned frame.
        final_end_scale: Further shift of the last word's end, as a fraction of its aligned length.
        phone_shift_s: Inside a word, each phone's start moves this much earlier, never before the
            previous phone's last aligned frame (phonemic CTC only; chosen on RAVDESS actors 01-10 against
            pocketsphinx's phone alignment: ``edgeser_benchmarks/studies/phone_timing.py``).
        on_unknown: What to do with transcript characters/phones the CTC vocabulary cannot express:
            ``"error"`` raises ``AlignmentError`` naming them; ``"skip"`` leaves them out (logged,
            and listed in ``Segmentation.skipped``).
        beam_width: Beam of the CTC decoder used when no transcript is given.
        kenlm_path: Optional KenLM model (``.arpa``/``.bin``) for decoding character vocabularies.
    """

    start_shift_s: float = 0.12
    start_shift_by_class: tuple[tuple[str, float], ...] = (("vowel", 0.09), ("stop", 0.11), ("sibilant", 0.22),
                                                           ("fricative", 0.09))
    overlap_s: float = 0.02
    end_shift_s: float = 0.08
    final_end_shift_s: float = -0.05
    final_end_scale: float = 0.85
    phone_shift_s: float = 0.06
    on_unknown: str = "error"
    beam_width: int = 32
    kenlm_path: str | None = None

    def __post_init__(self) -> None:
        if self.on_unknown not in ("error", "skip"):
            raise InputError(f"on_unknown must be 'error' or 'skip', got {self.on_unknown!r}")
        if self.beam_width < 1:
            raise InputError(f"beam_width must be >= 1, got {self.beam_width}")
        shifts = (self.start_shift_s, self.end_shift_s, self.phone_shift_s, self.overlap_s,
                  *(v for _, v in self.start_shift_by_class))
        if not all(0 <= v < 1 for v in shifts):
            raise InputError("every shift (start, by class, overlap, end, phone) must be in [0, 1) seconds")
        if not -1 < self.final_end_shift_s < 1:
            raise InputError(f"final_end_shift_s must be in (-1, 1) seconds, got {self.final_end_shift_s}")
        if not 0 <= self.final_end_scale <= 2:
            raise InputError(f"final_end_scale must be in [0, 2], got {self.final_end_scale}")

    def boundary_rule(self) -> dict[str, Any]:
        """The boundary rule's parameters as JSON-ready values (what an emotion head records, see
        :meth:`with_boundary_rule`)."""
        return {k: [list(p) for p in self.start_shift_by_class] if k == "start_shift_by_class" else getattr(self, k)
                for k in BOUNDARY_RULE_FIELDS}

    def with_boundary_rule(self, rule: Mapping[str, Any]) -> SegmentOptions:
        """These options with the boundary rule ``rule`` (from :meth:`boundary_rule`) in place of their own."""
        unknown = set(rule) - set(BOUNDARY_RULE_FIELDS)
        if unknown:
            raise InputError(f"unknown boundary-rule parameters {sorted(unknown)}; known: {BOUNDARY_RULE_FIELDS}")
        values: dict[str, Any] = {k: tuple((str(c), float(v)) for c, v in rule[k]) if k == "start_shift_by_class"
                                  else float(rule[k]) for k in rule}
        return replace(self, **values)

    def start_shift(self, manner: str | None) -> float:
        """The word-start shift for a word whose first phone is of this manner class."""
        return dict(self.start_shift_by_class).get(manner or "", self.start_shift_s)

    @classmethod
    def exact(cls) -> SegmentOptions:
        """No boundary rule: words and phones at their aligned frames."""
        return cls(start_shift_s=0.0, start_shift_by_class=(), overlap_s=0.0, end_shift_s=0.0, final_end_shift_s=0.0,
                   final_end_scale=0.0, phone_shift_s=0.0)
