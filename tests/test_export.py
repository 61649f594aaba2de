"""Checkpoint → ONNX → runtime, compared with Hugging Face's own torch pipeline on real audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeser import EmotionRecognizer, load_audio
from edgeser.errors import BundleError, ParityError
from edgeser.model.bundle import Bundle
from tests.conftest import SAMPLE, real_speech

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from edgeser_export.pipeline import export_bundle  # noqa: E402
from edgeser_export.sources import load_speech, load_text, speech_from_config  # noqa: E402

pytestmark = pytest.mark.export
ATOL = 1e-4


def hf_reference(folder: Path, waves: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-utterance hidden states (all layers) and CTC log-probs from transformers, one utterance at a time."""
    processor = transformers.Wav2Vec2Processor.from_pretrained(folder)
    model = transformers.Wav2Vec2ForCTC.from_pretrained(folder).eval()
    hidden, log_probs = [], []
    for w in waves:
        inputs = processor(w, sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            out = model(**inputs, output_hidden_states=True)
        hidden.append(torch.stack(out.hidden_states, 1)[0].numpy())
        log_probs.append(torch.log_softmax(out.logits, -1)[0].numpy())
    return hidden, log_probs


def test_export_records_parity_on_shapes_other_than_the_trace(tiny_bundle: Path) -> None:
    rec = EmotionRecognizer.from_bundle(tiny_bundle)
    for section in (rec.bundle.manifest.speech, rec.bundle.manifest.text):
        assert section is not None
        parity = section.provenance["parity"]
        assert len(parity["cases"]) == 2 and parity["tolerance"] == 1e-3
        assert all(0 <= v <= 1e-3 for v in parity["max_abs_diff"].values())
    speech_shapes = [c["shapes"]["input_values"] for c in rec.bundle.manifest.speech.provenance["parity"]["cases"]]
    assert [2, 16000] not in speech_shapes  # the trace shape
    assert {s[0] for s in speech_shapes} == {1, 3}


def test_runtime_matches_transformers_on_real_speech(tiny_bundle: Path, tiny_speech_dir: Path, tmp_path: Path) -> None:
    files = real_speech(2, tmp_path)
    rec = EmotionRecognizer.from_bundle(tiny_bundle)
    waves = [load_audio(f) for f in files]
    ref_hidden, ref_lp = hf_reference(tiny_speech_dir, waves)
    out = rec.encode(files)  # batched, padded to the longest
    assert out.hidden_states.shape[:2] == (3, 3)
    for i in range(3):
        hidden, lp = out.item(i)
        assert hidden.shape == ref_hidden[i].shape and lp.shape == ref_lp[i].shape
        np.testing.assert_allclose(hidden, ref_hidden[i], atol=ATOL)
        np.testing.assert_allclose(lp, ref_lp[i], atol=ATOL)
    assert not out.hidden_states[~out.frame_mask[:, None, :].repeat(3, 1)].any()  # padding is zeroed
    np.testing.assert_allclose(np.exp(out.item(0)[1]).sum(-1), 1.0, atol=1e-5)


def test_frame_count_matches_the_model(tiny_speech_dir: Path, tiny_bundle: Path) -> None:
    model = transformers.Wav2Vec2ForCTC.from_pretrained(tiny_speech_dir)
    frames = EmotionRecognizer.from_bundle(tiny_bundle).speech.frames
    lengths = np.array([400, 401, 719, 720, 16000, 48123])
    expected = model._get_feat_extract_output_lengths(torch.from_numpy(lengths)).numpy()
    np.testing.assert_array_equal(frames.num_frames(lengths), expected)


def test_resampled_input_matches_transformers_on_the_resampled_audio(tiny_bundle: Path, tiny_speech_dir: Path) -> None:
    wave16 = load_audio(SAMPLE)
    wave8 = load_audio(wave16, 16000, target_rate=8000)
    rec = EmotionRecognizer.from_bundle(tiny_bundle)
    out = rec.encode(wave8, sample_rate=8000)
    ref_hidden, _ = hf_reference(tiny_speech_dir, [load_audio(wave8, 8000)])
    np.testing.assert_allclose(out.item(0)[0], ref_hidden[0], atol=ATOL)


def test_group_norm_model_without_attention_mask(tmp_path: Path, tiny_speech_group_dir: Path) -> None:
    """wav2vec2-base-style front end: the graph takes no mask; single utterances are exact."""
    export_bundle(tmp_path / "b", speech=load_speech(tiny_speech_group_dir), exporter="torchscript")
    rec = EmotionRecognizer.from_bundle(tmp_path / "b")
    assert rec.speech.spec.input_names == ("input_values",) and not rec.speech.uses_attention_mask
    wave = load_audio(SAMPLE)
    ref_hidden, ref_lp = hf_reference(tiny_speech_group_dir, [wave])
    hidden, lp = rec.encode(wave, sample_rate=16000).item(0)
    np.testing.assert_allclose(hidden[0], ref_hidden[0][-1], atol=ATOL)
    np.testing.assert_allclose(lp, ref_lp[0], atol=ATOL)


@pytest.mark.integration
def test_dynamo_exporter(tmp_path: Path, tiny_speech_dir: Path, tiny_text_dir: Path) -> None:
    m = export_bundle(tmp_path / "b", speech=load_speech(tiny_speech_dir), text=load_text(tiny_text_dir),
                      exporter="dynamo", layers="1,2")
    assert m.speech is not None and m.speech.provenance["exporter"] == "torch.onnx.export (dynamo)"
    assert m.speech.provenance["opset"] == 18
    out = EmotionRecognizer.from_bundle(tmp_path / "b").encode([SAMPLE, SAMPLE])
    assert out.hidden_states.shape[1] == 2
    np.testing.assert_allclose(out.hidden_states[0], out.hidden_states[1])


def test_parity_failure_leaves_nothing_behind(tmp_path: Path, tiny_speech_dir: Path) -> None:
    with pytest.raises(ParityError, match="above the tolerance 1e-12"):
        export_bundle(tmp_path / "b", speech=load_speech(tiny_speech_dir), exporter="torchscript", tolerance=1e-12)
    assert list(tmp_path.iterdir()) == []


def test_speech_presets_and_config_errors() -> None:
    src = speech_from_config("tiny")
    assert src.vocab.tokens[src.vocab.blank_id] == "<pad>" and "random" in src.description["weights"]
    with pytest.raises(BundleError, match="unknown speech config"):
        speech_from_config("wav2vec3-huge")


def test_checkpoint_folder_errors(tmp_path: Path, tiny_speech_dir: Path) -> None:
    with pytest.raises(BundleError, match="never downloads"):
        load_speech(tmp_path / "nope")
    broken = tmp_path / "no-vocab"
    broken.mkdir()
    for f in tiny_speech_dir.iterdir():
        if f.name != "vocab.json":
            (broken / f.name).write_bytes(f.read_bytes())
    with pytest.raises(BundleError, match=r"vocab\.json: missing"):
        load_speech(broken)


def test_layers_option_is_validated(tmp_path: Path, tiny_speech_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"distinct indices in 0\.\.2"):
        export_bundle(tmp_path / "b", speech=load_speech(tiny_speech_dir), layers="3", exporter="torchscript")
    assert not (tmp_path / "b").exists()


def test_the_committed_fixture_bundles_are_what_the_exporter_makes_now(tmp_path: Path) -> None:
    """tests/fixtures (used by the torch-free tests) exported again from the same tiny checkpoints: the same
    sections and files, and the same outputs on the sample. When this fails, run ``python tests/make_fixtures.py``."""
    import numpy as np

    from edgeser import EmotionRecognizer
    from tests.conftest import FIXTURES, with_text_encoder
    from tests.make_fixtures import make

    fresh = make(tmp_path / "fresh")
    hint = "the committed fixtures are stale: run python tests/make_fixtures.py"
    for name, path in fresh.items():
        a, b = Bundle.load(path).manifest, Bundle.load(FIXTURES / name).manifest
        assert set(a.files) == set(b.files), hint
        for section in ("speech", "text", "fusion"):
            x, y = getattr(a, section), getattr(b, section)
            assert (x is None) == (y is None), hint
            if x is not None:
                assert x.spec == y.spec, f"{name}/{section}: {hint}"
    text = "kids are talking by the door"
    for name in ("tiny",):
        new, old = EmotionRecognizer.from_bundle(fresh[name]), EmotionRecognizer.from_bundle(FIXTURES / name)
        np.testing.assert_allclose(new.encode(SAMPLE).hidden_states, old.encode(SAMPLE).hidden_states, atol=1e-4,
                                   err_msg=hint)
        np.testing.assert_allclose(new.embed_text(text).token_embeddings, old.embed_text(text).token_embeddings,
                                   atol=1e-4, err_msg=hint)
    with_text_encoder(fresh["parts"], fresh["text"], tmp_path / "new-full")
    with_text_encoder(FIXTURES / "parts", FIXTURES / "text", tmp_path / "old-full")
    p_new = EmotionRecognizer.from_bundle(tmp_path / "new-full").predict(SAMPLE, text).probabilities
    p_old = EmotionRecognizer.from_bundle(tmp_path / "old-full").predict(SAMPLE, text).probabilities
    assert p_new == pytest.approx(p_old, abs=1e-4), hint
