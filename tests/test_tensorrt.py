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
from edgeser.bundle import Bundle, EngineEntry, Manifest
from edgeser.errors import BackendUnavailableError, BundleError
from edgeser.specs import GraphSpec, TensorSpec

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None

ENTRY = EngineEntry(graph="speech", file="engines/speech.plan", tensorrt_version="10.3.0", gpu="Orin",
                    compute_capability="8.7", precision="int8", profile={"input_values": [[1, 8000], [1, 64000],
                                                                                        [1, 480000]]})


def test_profiles_follow_the_graph_specs() -> None:
    from edgeser.export.tensorrt import ProfileConfig, profile_shapes

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
    from edgeser.export.tensorrt import build_bundle_engines

    with pytest.raises(BackendUnavailableError, match="JetPack"):
        build_bundle_engines(tiny_bundle, tmp_path / "e")
    assert not (tmp_path / "e").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_TRT, reason="needs TensorRT and an NVIDIA GPU; none on this project's machines "
                                         "(this path has never been run)")
def test_engines_match_onnx_runtime(tiny_bundle: Path, tmp_path: Path) -> None:  # pragma: no cover - GPU only
    from edgeser.export.tensorrt import build_bundle_engines

    build_bundle_engines(tiny_bundle, tmp_path / "e", graphs=("speech",))
    wave = (0.1 * np.sin(np.arange(32000) / 5)).astype(np.float32)
    ref = EmotionRecognizer.from_bundle(tiny_bundle).encode(wave, sample_rate=16000)
    trt_rec = EmotionRecognizer.from_bundle(tmp_path / "e", RuntimeOptions.tensorrt())
    from edgeser.backends.trt import TrtBackend

    assert isinstance(trt_rec._speech, TrtBackend)  # an engine ran, not a silent fallback to ONNX Runtime
    got = trt_rec.encode(wave, sample_rate=16000)
    np.testing.assert_allclose(got.hidden_states, ref.hidden_states, atol=1e-2)
