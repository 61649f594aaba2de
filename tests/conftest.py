"""Shared fixtures: tiny random checkpoints saved with save_pretrained, and bundles exported from them."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "edgeser" / "samples" / "kids_talking.wav"

TINY_BERT_WORDS = ["kids", "are", "talking", "by", "the", "door", "dogs", "sitting", "i", "am", "so", "happy", "sad",
                   "angry", "today", ".", ",", "!", "?", "'", "t", "can", "believe", "you", "did", "that"]


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0, what: str = "the condition") -> None:
    """Poll ``condition`` until it holds; fail after ``timeout_s`` (a bound on a hang, not a speed assertion)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout_s} s")
        time.sleep(0.01)


def ravdess_files(n: int) -> list[Path]:
    """The first ``n`` RAVDESS files of the shared data, or a skip when the data is absent."""
    audio = DATA / "ravdess" / "audio"
    files = sorted(audio.glob("Actor_0[1-2]/*.flac"))[:n] if audio.is_dir() else []
    if len(files) < n:
        pytest.skip(f"RAVDESS audio not found under {audio} (see ../shared/data/README.md)")
    return files


def real_speech(n: int, tmp: Path) -> list[Path]:
    """The bundled sample and ``n`` RAVDESS files; without the shared data, ``n`` shorter crops of the sample
    (written under ``tmp``) instead, so that parity on real speech is checked on a fresh clone too."""
    audio = DATA / "ravdess" / "audio"
    files = sorted(audio.glob("Actor_0[1-2]/*.flac"))[:n] if audio.is_dir() else []
    if len(files) < n:
        import soundfile as sf

        wave, rate = sf.read(SAMPLE, dtype="float32")
        files = []
        for i in range(n):
            files.append(tmp / f"sample-crop-{i}.wav")
            sf.write(files[-1], wave[: int(len(wave) * (0.8 - 0.25 * i))], rate)
    return [SAMPLE, *files]


def _save_tiny_speech(folder: Path, layer_norm: bool) -> Path:
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    from edgeser_export.sources import CHARACTER_VOCAB

    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(CHARACTER_VOCAB)}))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), unk_token="<unk>", pad_token="<pad>",
                                     word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                         return_attention_mask=layer_norm)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                            conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                            vocab_size=len(CHARACTER_VOCAB), pad_token_id=0,
                            feat_extract_norm="layer" if layer_norm else "group", do_stable_layer_norm=layer_norm)
    torch.manual_seed(1)
    Wav2Vec2ForCTC(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Wav2Vec2ForCTC (layer-norm front end, uses attention masks), HF folder on disk."""
    pytest.importorskip("torch")
    return _save_tiny_speech(tmp_path_factory.mktemp("ckpt") / "tiny-w2v2-layer", layer_norm=True)


@pytest.fixture(scope="session")
def tiny_speech_group_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Wav2Vec2ForCTC with wav2vec2-base's group-norm front end (no attention mask)."""
    pytest.importorskip("torch")
    return _save_tiny_speech(tmp_path_factory.mktemp("ckpt") / "tiny-w2v2-group", layer_norm=False)


def _save_tiny_text(folder: Path) -> Path:
    import torch
    from tokenizers import Tokenizer
    from tokenizers.models import WordPiece
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder.mkdir(parents=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_BERT_WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    wordpiece = Tokenizer(WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    wordpiece.normalizer = BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = BertPreTokenizer()
    wordpiece.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                  special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    PreTrainedTokenizerFast(tokenizer_object=wordpiece, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]", mask_token="[MASK]").save_pretrained(folder)
    torch.manual_seed(2)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=31, max_position_embeddings=64)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_text_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BertModel with a fast WordPiece tokenizer over a small vocabulary."""
    pytest.importorskip("torch")
    return _save_tiny_text(tmp_path_factory.mktemp("ckpt") / "tiny-bert")


FIXTURES = ROOT / "tests" / "fixtures"
"""Bundles exported from the tiny checkpoints, committed so that the runtime, CLI and default-model tests run
without torch (written by ``python tests/make_fixtures.py``; test_export checks they are what the exporter
makes today)."""


@pytest.fixture(scope="session")
def fixture_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Copies of the committed fixture bundles: ``tiny`` (speech with all layers + text), ``parts`` (speech +
    a random emotion head, no text: like the shipped parts) and ``text`` (a text encoder alone)."""
    root = tmp_path_factory.mktemp("fixtures")
    out = {}
    for name in ("tiny", "parts", "text"):
        shutil.copytree(FIXTURES / name, root / name)
        out[name] = root / name
    return out


def with_text_encoder(base: Path, text_from: Path, out: Path) -> Path:
    """A bundle at ``out`` with every file and section of ``base`` (speech and a head that reads text) and the text
    encoder of ``text_from``: the fixture parts made whole, as ``edgeser export --text`` would have made them."""
    from edgeser.model.bundle import Bundle, Manifest
    from edgeser.model.writer import write_bundle

    a, b = Bundle.load(base), Bundle.load(text_from)
    text = b.manifest.text
    assert text is not None
    with write_bundle(out) as writer:
        for name in a.manifest.files:
            shutil.copy2(a.path / name, writer.path(name))
        for name in (text.graph, text.tokenizer):
            shutil.copy2(b.path / name, writer.path(name))
        m = a.manifest
        writer.finish(Manifest(edgeser_version=m.edgeser_version, created=m.created, labels=m.labels, files={},
                               speech=m.speech, text=text, fusion=m.fusion, speaker_fusion=m.speaker_fusion))
    return out


@pytest.fixture(scope="session")
def tiny_bundle(fixture_bundles: dict[str, Path]) -> Path:
    """The tiny speech + text bundle (a copy of tests/fixtures/tiny). Read-only: copy to modify."""
    return fixture_bundles["tiny"]


@pytest.fixture
def sine() -> np.ndarray:
    """One second of a 440 Hz tone at 16 kHz."""
    t = np.arange(16000) / 16000
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Writes the fuzz suites' outcome counts where ``EDGESER_FUZZ_REPORT`` says (edgeser_benchmarks.fuzz_outcomes)."""
    if os.environ.get("EDGESER_FUZZ_REPORT"):
        from tests.fuzzing import write_report

        write_report(int(exitstatus))
