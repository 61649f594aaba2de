"""edgeser triton: the model repository's configs parsed with Triton's own model-config protobuf, and the pipeline
model run against a stand-in for Triton's Python backend (graph models called through BLS, run by ONNX Runtime)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from edgeser import EmotionRecognizer
from edgeser.cli import main
from edgeser.model.bundle import Bundle
from edgeser.serving.triton import PIPELINE, write_repository
from tests.conftest import SAMPLE

TYPES = {"float32": "TYPE_FP32", "int64": "TYPE_INT64", "bool": "TYPE_BOOL", "float16": "TYPE_FP16"}


def parse(path: Path) -> Any:
    """A config.pbtxt read by tritonclient's ModelConfig protobuf (text format), as Triton reads it."""
    pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="needs tritonclient[grpc] (edgeser[triton])")
    from google.protobuf import text_format

    return text_format.Parse(path.read_text(), pb2.ModelConfig())


def test_every_config_parses_and_matches_the_bundle(tmp_path: Path) -> None:
    pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="needs tritonclient[grpc] (edgeser[triton])")
    result = write_repository("default", tmp_path / "repo", max_batch=8, instances=2)
    repo = Path(result["path"])
    m = Bundle.load(repo / PIPELINE / "1" / "bundle").manifest
    sections = {"speech": m.speech, "fusion": m.fusion, "speaker_fusion": m.speaker_fusion}
    assert set(result["models"]) == {PIPELINE, *(f"edgeser_{r}" for r, s in sections.items() if s is not None)}
    for role, section in sections.items():
        if section is None:
            continue
        config = parse(repo / f"edgeser_{role}" / "config.pbtxt")
        assert config.name == f"edgeser_{role}" and config.backend == "onnxruntime" and config.max_batch_size == 8
        shipped = Bundle.load(repo / PIPELINE / "1" / "bundle").file(section.graph)
        assert (repo / f"edgeser_{role}" / "1" / "model.onnx").read_bytes() == shipped.read_bytes()
        assert [i.name for i in config.input] == list(section.spec.input_names)
        assert [o.name for o in config.output] == list(section.spec.output_names)
        for t, c in zip((*section.spec.inputs, *section.spec.outputs), (*config.input, *config.output), strict=True):
            assert c.data_type == pb2.DataType.Value(TYPES[t.dtype])
            assert list(c.dims) == [d if isinstance(d, int) else -1 for d in t.dims[1:]]  # batch axis dropped
        assert config.dynamic_batching.max_queue_delay_microseconds == 2000
        assert config.instance_group[0].count == 2
        assert config.instance_group[0].kind == pb2.ModelInstanceGroup.Kind.Value("KIND_CPU")
    pipeline = parse(repo / PIPELINE / "config.pbtxt")
    assert pipeline.backend == "python" and pipeline.max_batch_size == 0
    assert [i.name for i in pipeline.input] == ["AUDIO", "SAMPLE_RATE", "TEXT"] and pipeline.input[2].optional
    assert [o.name for o in pipeline.output] == ["PROBABILITIES", "LABEL", "RESULT"]
    assert list(pipeline.output[0].dims) == [len(m.labels)]
    assert pipeline.parameters["labels"].string_value == ",".join(m.labels)
    assert "edgeser.serving.triton_model" in (repo / PIPELINE / "1" / "model.py").read_text()


def test_instance_kinds_and_the_tensorrt_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  tiny_bundle: Path) -> None:
    pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="needs tritonclient[grpc]")
    config = parse(Path(write_repository(tiny_bundle, tmp_path / "cpu")["path"]) / "edgeser_speech" / "config.pbtxt")
    assert config.instance_group[0].kind == pb2.ModelInstanceGroup.Kind.Value("KIND_CPU")
    pytest.importorskip("onnx", reason="the fake TensorRT parser reads the graph with onnx")
    from edgeser_export.tensorrt import build_bundle_engines
    from tests import fake_tensorrt

    fake_tensorrt.install(monkeypatch)
    engines = build_bundle_engines(tiny_bundle, tmp_path / "e", graphs=("speech", "text"), progress=lambda _: None)
    repo = Path(write_repository(engines, tmp_path / "trt", backend="tensorrt")["path"])
    config = parse(repo / "edgeser_speech" / "config.pbtxt")
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 8
    assert config.instance_group[0].kind == pb2.ModelInstanceGroup.Kind.Value("KIND_GPU")
    assert (repo / "edgeser_speech" / "1" / "model.plan").read_bytes().startswith(b"FAKEPLAN")


class FakeTensor:
    def __init__(self, name: str, value: np.ndarray) -> None:
        self._name, self._value = name, np.asarray(value)

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._value


def fake_pb_utils(repo: Path) -> types.ModuleType:
    """The parts of triton_python_backend_utils the pipeline model uses; BLS runs each graph model's ONNX file
    with ONNX Runtime, as Triton's onnxruntime backend would."""
    import onnxruntime as ort

    pb = types.ModuleType("triton_python_backend_utils")
    sessions: dict[str, Any] = {}
    pb.calls = []  # type: ignore[attr-defined]

    class TritonError:
        def __init__(self, msg: str) -> None:
            self._msg = msg

        def message(self) -> str:
            return self._msg

    class InferenceResponse:
        def __init__(self, output_tensors: list[FakeTensor], error: TritonError | None = None) -> None:
            self.output_tensors, self._error = output_tensors, error

        def has_error(self) -> bool:
            return self._error is not None

        def error(self) -> TritonError | None:
            return self._error

    class InferenceRequest:
        def __init__(self, model_name: str, inputs: list[FakeTensor], requested_output_names: list[str]) -> None:
            self.model_name, self.inputs, self.outputs = model_name, inputs, requested_output_names

        def exec(self) -> InferenceResponse:
            pb.calls.append(self.model_name)  # type: ignore[attr-defined]
            if self.model_name not in sessions:
                sessions[self.model_name] = ort.InferenceSession(str(repo / self.model_name / "1" / "model.onnx"))
            out = sessions[self.model_name].run(self.outputs, {t.name(): t.as_numpy() for t in self.inputs})
            return InferenceResponse([FakeTensor(n, v) for n, v in zip(self.outputs, out, strict=True)])

    def get_input_tensor_by_name(request: Any, name: str) -> FakeTensor | None:
        return request.get(name)

    def get_output_tensor_by_name(response: InferenceResponse, name: str) -> FakeTensor:
        return next(t for t in response.output_tensors if t.name() == name)

    pb.Tensor, pb.TritonError, pb.InferenceResponse, pb.InferenceRequest = (  # type: ignore[attr-defined]
        FakeTensor, TritonError, InferenceResponse, InferenceRequest)
    pb.get_input_tensor_by_name = get_input_tensor_by_name  # type: ignore[attr-defined]
    pb.get_output_tensor_by_name = get_output_tensor_by_name  # type: ignore[attr-defined]
    return pb


def test_the_pipeline_model_gives_the_runtimes_prediction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real audio through the Python-backend model, its graphs called through (stand-in) BLS: the same
    probabilities as the runtime alone; a bad request gets an error response and the next is served."""
    import soundfile as sf

    from edgeser.serving.triton_model import TritonPythonModel

    repo = Path(write_repository("default", tmp_path / "repo")["path"])
    pb = fake_pb_utils(repo)
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", pb)
    model = TritonPythonModel()
    model.initialize({"model_repository": str(repo / PIPELINE), "model_version": "1"})
    wave, rate = sf.read(SAMPLE, dtype="float32")
    good = {"AUDIO": FakeTensor("AUDIO", wave), "SAMPLE_RATE": FakeTensor("SAMPLE_RATE", np.array([rate], np.int32))}
    silent = {"AUDIO": FakeTensor("AUDIO", np.zeros(16000, np.float32))}
    ok, bad, again = model.execute([good, silent, good])
    want = EmotionRecognizer.from_bundle("default").predict(SAMPLE)
    probabilities = dict(zip(model.labels, get(ok, "PROBABILITIES").tolist(), strict=True))
    assert probabilities == pytest.approx(want.probabilities, abs=1e-6)
    assert get(ok, "LABEL")[0].decode() == want.label
    assert json.loads(get(ok, "RESULT")[0])["label"] == want.label
    assert bad.has_error() and "silent" in bad.error().message()
    assert get(again, "LABEL")[0].decode() == want.label
    assert "edgeser_speech" in pb.calls and "edgeser_fusion" in pb.calls  # the graphs ran as Triton models


def get(response: Any, name: str) -> np.ndarray:
    return next(t for t in response.output_tensors if t.name() == name).as_numpy()


def test_the_command_and_its_refusals(tmp_path: Path, tiny_bundle: Path) -> None:
    run = CliRunner().invoke
    result = run(main, ["triton", "default", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0 and '"edgeser_speech"' in result.output
    result = run(main, ["triton", "default", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "already exists" in result.output
    result = run(main, ["triton", str(tiny_bundle), "--out", str(tmp_path / "t"), "--backend", "tensorrt"])
    assert result.exit_code == 1 and "has no TensorRT engines" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "t").exists()
