"""TensorRT: what can be checked without a GPU (profiles, engine records, refusal of foreign engines, clear
errors), and the engine round trip, which needs a GPU and skips here with the reason."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeser import EmotionRecognizer, RuntimeOptions
from edgeser.backends.trt import check_engine
from edgeser.errors import BackendUnavailableError, BundleError
from edgeser.model.bundle import Bundle, EngineEntry, Manifest
from edgeser.model.specs import GraphSpec, TensorSpec

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None

ENTRY = EngineEntry(graph="speech", file="engines/speech.plan", tensorrt_version="10.3.0", gpu="Orin",
                    compute_capability="8.7", precision="int8", profile={"input_values": [[1, 8000], [1, 64000],
                                                                                        [1, 480000]]})


def test_profiles_follow_the_graph_specs() -> None:
    from edgeser_export.tensorrt import ProfileConfig, profile_shapes

    speech = GraphSpec(inputs=(TensorSpec("input_values", "float32", ("batch", "samples")),
                               TensorSpec("attention_mask", "int64", ("batch", "samples"))), outputs=())
    config = ProfileConfig(audio_s=(0.5, 4.0, 30.0), max_batch=4)
    shapes = profile_shapes(speech, 50.0, 16000, config)
    assert shapes["input_values"] == [[1, 8000], [1, 64000], [4, 480000]] == shapes["attention_mask"]
    fusion = GraphSpec(inputs=(TensorSpec("frame", "float32", ("batch", "frames", 256)),
                               TensorSpec("word_mask", "bool", ("batch", "words")),
                               TensorSpec("text", "float32", ("batch", "tokens", 384))), outputs=())
    shapes = profile_shapes(fusion, 50.0, 16000, config)
    assert shapes["frame"] == [[1, 25, 256], [1, 200, 256], [4, 1500, 256]]
    assert shapes["word_mask"] == [[1, 1], [1, 16], [4, 256]]
    assert shapes["text"] == [[1, 2, 384], [1, 32, 384], [4, 128, 384]]


def test_a_foreign_engine_is_refused_with_the_reason() -> None:
    check_engine(ENTRY, "10.3.0", "Orin", "8.7")  # its own machine: fine
    with pytest.raises(BundleError, match=r"TensorRT 10.3.0 \(this machine has 10.7.0\)"):
        check_engine(ENTRY, "10.7.0", "Orin", "8.7")
    with pytest.raises(BundleError, match="not portable"):
        check_engine(ENTRY, "10.3.0", "NVIDIA H100 80GB HBM3", "9.0")


def test_engine_entries_round_trip_and_are_checked_like_files(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    raw = json.loads((bundle / "bundle.json").read_text())
    raw["engines"] = [ENTRY.to_dict()]
    (bundle / "bundle.json").write_text(json.dumps(raw))
    assert Manifest.from_dict(raw).engines == (ENTRY,)
    checks = Bundle(bundle, Manifest.from_dict(raw)).check_files()
    assert any(c.name == ENTRY.file and not c.ok for c in checks)  # listed engine file is missing
    with pytest.raises(BundleError):
        Bundle.load(bundle)


def test_tensorrt_backend_without_engines_falls_back_to_onnx_runtime(tiny_bundle: Path) -> None:
    rec = EmotionRecognizer.from_bundle(tiny_bundle, RuntimeOptions(backend="tensorrt"))
    assert rec.encode(np.full(16000, 0.1, np.float32) * np.sin(np.arange(16000)), sample_rate=16000).log_probs.size
    with pytest.raises(ValueError, match="backend"):
        RuntimeOptions(backend="tvm")


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed here")
def test_building_engines_without_tensorrt_says_what_to_install(tiny_bundle: Path, tmp_path: Path) -> None:
    from edgeser_export.tensorrt import build_bundle_engines

    with pytest.raises(BackendUnavailableError, match="JetPack"):
        build_bundle_engines(tiny_bundle, tmp_path / "e")
    assert not (tmp_path / "e").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_TRT, reason="needs TensorRT and an NVIDIA GPU; none on this project's machines "
                                         "(this path has never been run)")
def test_engines_match_onnx_runtime(tiny_bundle: Path, tmp_path: Path) -> None:  # pragma: no cover - GPU only
    from edgeser_export.tensorrt import build_bundle_engines

    build_bundle_engines(tiny_bundle, tmp_path / "e", graphs=("speech",))
    wave = (0.1 * np.sin(np.arange(32000) / 5)).astype(np.float32)
    ref = EmotionRecognizer.from_bundle(tiny_bundle).encode(wave, sample_rate=16000)
    trt_rec = EmotionRecognizer.from_bundle(tmp_path / "e", RuntimeOptions.tensorrt())
    from edgeser.backends.trt import TrtBackend

    assert isinstance(trt_rec._speech, TrtBackend)  # an engine ran, not a silent fallback to ONNX Runtime
    got = trt_rec.encode(wave, sample_rate=16000)
    np.testing.assert_allclose(got.hidden_states, ref.hidden_states, atol=1e-2)


# ---- the builder and TrtBackend.run against tests/fake_tensorrt.py (TensorRT's API surface; ONNX Runtime inside) ----

@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from tests import fake_tensorrt

    return fake_tensorrt.install(monkeypatch)


@pytest.fixture
def engines(fake_trt, tiny_bundle: Path, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    pytest.importorskip("onnx", reason="the fake parser reads the graph with onnx (edgeser[export])")
    from edgeser_export.tensorrt import build_bundle_engines

    return build_bundle_engines(tiny_bundle, tmp_path / "e", graphs=("speech", "text"),
                                timing_cache_dir=tmp_path / "cache", progress=lambda _: None)


def test_engines_are_built_recorded_and_bound_to_their_graph(engines: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    m = Bundle.load(engines).manifest
    assert [e.graph for e in m.engines] == ["speech", "text"]
    speech = m.engines[0]
    assert speech.onnx_sha256 == m.files["speech.onnx"].sha256 and speech.tensorrt_version == "10.99.0-fake"
    assert speech.profile["input_values"][2][0] == 8  # max batch 8, as bench --batch and triton use
    assert speech.gpu == "Fake GPU" and speech.compute_capability == "8.7"
    assert list((tmp_path / "cache").glob("Fake_GPU-sm8.7-trt10.99.0-fake.cache"))
    raw = json.loads((engines / "bundle.json").read_text())
    raw["engines"][0]["onnx_sha256"] = "0" * 64  # an engine of another export of this graph
    (engines / "bundle.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="the engine is stale"):
        EmotionRecognizer.from_bundle(engines, RuntimeOptions.tensorrt())


def test_trt_backend_runs_batches_and_matches_onnx_runtime(engines: Path, tiny_bundle: Path, fake_trt) -> None:  # type: ignore[no-untyped-def]
    from edgeser.backends.trt import TrtBackend

    rec = EmotionRecognizer.from_bundle(engines, RuntimeOptions.tensorrt())
    assert isinstance(rec._speech, TrtBackend) and isinstance(rec._text, TrtBackend)
    ref = EmotionRecognizer.from_bundle(tiny_bundle)
    rng = np.random.default_rng(0)
    waves = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (16000, 23000)]
    got, want = rec.encode(waves, sample_rate=16000), ref.encode(waves, sample_rate=16000)
    np.testing.assert_array_equal(got.hidden_states, want.hidden_states)  # the same graph under the fake
    np.testing.assert_array_equal(got.num_frames, want.num_frames)
    np.testing.assert_array_equal(rec.embed_text(["kids are talking", "by the door"]).token_embeddings,
                                  ref.embed_text(["kids are talking", "by the door"]).token_embeddings)
    long = (0.1 * rng.standard_normal(16000 * 31)).astype(np.float32)  # the profile ends at 30 s
    with pytest.raises(ValueError, match="outside the engine's optimization profile"):
        rec.encode(long, sample_rate=16000)
    backend = rec._speech
    assert fake_trt.DEVICE.memory and fake_trt.DEVICE.streams
    backend.close()
    rec._text.close()
    assert not fake_trt.DEVICE.memory and not fake_trt.DEVICE.streams  # buffers freed, streams destroyed


def test_tensor_types_without_a_numpy_type_are_refused_by_name(fake_trt) -> None:  # type: ignore[no-untyped-def]
    from edgeser.backends.trt import numpy_dtype
    from edgeser.errors import BackendError

    assert numpy_dtype(fake_trt, "x", fake_trt.DataType.HALF) == np.float16
    assert numpy_dtype(fake_trt, "mask", fake_trt.DataType.BOOL) == np.bool_
    with pytest.raises(BackendError, match="'hidden' has TensorRT type BF16"):
        numpy_dtype(fake_trt, "hidden", fake_trt.DataType.BF16)


def test_an_engine_whose_tensors_disagree_with_the_spec_is_refused(engines: Path) -> None:
    raw = json.loads((engines / "bundle.json").read_text())
    raw["speech"]["spec"]["outputs"][0]["dtype"] = "float16"
    (engines / "bundle.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError):
        EmotionRecognizer.from_bundle(engines, RuntimeOptions(backend="tensorrt", verify_hashes=False))


def test_the_fake_parser_refuses_what_tensorrt_does_and_the_tensorrt_target_passes(fake_trt, tiny_bundle: Path,  # type: ignore[no-untyped-def]
                                                                                  tmp_path: Path) -> None:
    """An int8-dynamic variant (MatMulInteger) and a cpu-target static INT8 variant (unsigned activations) fail the
    parse; the --target tensorrt variant builds. (The fake parser encodes TensorRT's documented limits.)"""
    pytest.importorskip("torch")
    import soundfile as sf

    from edgeser.datasets import Dataset, Utterance
    from edgeser_calibration.sets import build
    from edgeser_export.quantize import QuantizeConfig, quantize_bundle
    from edgeser_export.tensorrt import build_bundle_engines
    from tests.conftest import SAMPLE

    wave, sr = sf.read(SAMPLE, dtype="float32")
    utts = []
    for i, gain in enumerate((1.0, 0.5, 1.5, 0.3)):
        sf.write(tmp_path / f"u{i}.wav", np.clip(wave * gain, -1, 1), sr)
        utts.append(Utterance(f"u{i}", tmp_path / f"u{i}.wav", f"s{i % 2}", f"s{i % 2}", "neutral", "kids"))
    calibration = build(Dataset("sample", tuple(utts)), tmp_path / "set", n=4, min_s=1.0, max_s=2.0)
    for name, config in (("dyn", QuantizeConfig("int8-dynamic", graphs=("speech",))),
                         ("cpu", QuantizeConfig("int8", method="minmax", graphs=("speech",), min_cosine=0.0)),
                         ("trt", QuantizeConfig("int8", graphs=("speech",), min_cosine=0.0, target="tensorrt"))):
        quantize_bundle(tiny_bundle, tmp_path / name, config, calibration)
    for name in ("dyn", "cpu"):
        with pytest.raises(BundleError, match="ONNX parser failed"):
            build_bundle_engines(tmp_path / name, tmp_path / f"{name}-e", graphs=("speech",), progress=lambda _: None)
    built = build_bundle_engines(tmp_path / "trt", tmp_path / "trt-e", graphs=("speech",), progress=lambda _: None)
    assert Bundle.load(built).manifest.engines[0].precision == "int8"


def test_tensorrt_before_10_is_refused_in_one_line(fake_trt, monkeypatch: pytest.MonkeyPatch, tiny_bundle: Path,  # type: ignore[no-untyped-def]
                                                   tmp_path: Path) -> None:
    """JetPack 5.x and 6.0 ship TensorRT 8.5 / 8.6, whose API the builder and runtime do not use: building engines
    and running them say so and point to ONNX Runtime's TensorRT provider (issue 25, item 23)."""
    from edgeser.backends.trt import tensorrt
    from edgeser.errors import BackendUnavailableError

    monkeypatch.setattr(fake_trt, "__version__", "8.6.1")
    with pytest.raises(BackendUnavailableError,
                       match=r"TensorRT 10 or later \(JetPack 6\.1\+\).*8\.6\.1.*ort-tensorrt"):
        tensorrt()
    pytest.importorskip("onnx")
    from edgeser_export.tensorrt import build_bundle_engines

    with pytest.raises(BackendUnavailableError, match="building TensorRT engines needs TensorRT 10"):
        build_bundle_engines(tiny_bundle, tmp_path / "e", graphs=("speech",), progress=lambda _: None)
