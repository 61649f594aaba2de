"""A Triton Inference Server model repository from a bundle (``edgeser triton BUNDLE --out REPO``).

Layout (every ``config.pbtxt`` in Triton's model-configuration text format)::

    REPO/
      edgeser_speech/  config.pbtxt  1/model.onnx   (or 1/model.plan with --backend tensorrt)
      edgeser_text/    config.pbtxt  1/model.onnx   (when the bundle has a text encoder)
      edgeser_fusion/  config.pbtxt  1/model.onnx   (and edgeser_speaker_fusion, when the bundle has one)
      edgeser/         config.pbtxt  1/model.py  1/bundle/   (Python backend: the whole pipeline)

Each graph is its own model, with its inputs and outputs from ``bundle.json``'s spec (the batch axis left to
``max_batch_size``, any other named axis -1), dynamic batching and an instance group (CPU for ONNX Runtime, GPU
for TensorRT plans). ``edgeser`` is a Python-backend model that runs what lies around the graphs (audio checks,
segmentation when the head needs it, pooling, tokenizing) with this package, and calls the graph models through
Triton's business-logic scripting (BLS): inputs ``AUDIO`` (float32 samples), optional ``SAMPLE_RATE`` (int32, 16000
by default) and ``TEXT`` (a transcript); outputs ``PROBABILITIES`` (float32, one per label, in ``labels`` order),
``LABEL`` and ``RESULT`` (the prediction as JSON). Triton's Python environment needs edgeser installed.

Batching: requests of the same length batch together; requests of different lengths do not (Triton batches only
equal shapes unless told that an input is ragged, and the graphs take padded batches with masks, not ragged ones).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeser.errors import BundleError, InputError
from edgeser.model.bundle import Bundle
from edgeser.model.specs import GraphSpec, TensorSpec
from edgeser.model.writer import check_out

PIPELINE = "edgeser"
"""The name of the pipeline model; the graph models are ``edgeser_<role>``."""
TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64", "int32": "TYPE_INT32",
                "int8": "TYPE_INT8", "bool": "TYPE_BOOL"}
BACKENDS = ("onnxruntime", "tensorrt")
MODEL_PY = '''"""Triton Python-backend model: the edgeser pipeline around the graph models (edgeser.serving.triton)."""

from edgeser.serving.triton_model import TritonPythonModel  # noqa: F401
'''


def graph_model_name(role: str) -> str:
    return f"{PIPELINE}_{role}"


def _dims(t: TensorSpec, batched: bool) -> list[int]:
    dims = list(t.dims[1:] if batched else t.dims)
    return [d if isinstance(d, int) else -1 for d in dims]


def _tensor_block(t: TensorSpec, batched: bool) -> str:
    if t.dtype not in TRITON_TYPES:
        raise BundleError(f"tensor {t.name!r} has type {t.dtype}, which this writer does not map to Triton")
    dims = ", ".join(str(d) for d in _dims(t, batched))
    return f'  {{\n    name: "{t.name}"\n    data_type: {TRITON_TYPES[t.dtype]}\n    dims: [ {dims} ]\n  }}'


def graph_config(name: str, spec: GraphSpec, backend: str, max_batch: int, instances: int) -> str:
    """The ``config.pbtxt`` of one graph model."""
    batched = max_batch > 0 and all(t.dims and t.dims[0] == "batch" for t in (*spec.inputs, *spec.outputs))
    head = (f'name: "{name}"\n' + ('platform: "tensorrt_plan"\n' if backend == "tensorrt"
                                   else 'backend: "onnxruntime"\n')
            + f"max_batch_size: {max_batch if batched else 0}\n")
    inputs = ",\n".join(_tensor_block(t, batched) for t in spec.inputs)
    outputs = ",\n".join(_tensor_block(t, batched) for t in spec.outputs)
    kind = "KIND_GPU" if backend == "tensorrt" else "KIND_CPU"
    batching = "dynamic_batching {\n  max_queue_delay_microseconds: 2000\n}\n" if batched else ""
    return (f"{head}input [\n{inputs}\n]\noutput [\n{outputs}\n]\n{batching}"
            f"instance_group [\n  {{\n    count: {instances}\n    kind: {kind}\n  }}\n]\n")


def pipeline_config(labels: Sequence[str], instances: int) -> str:
    """The ``config.pbtxt`` of the Python-backend pipeline model."""
    return (f'name: "{PIPELINE}"\nbackend: "python"\nmax_batch_size: 0\n'
            'input [\n'
            '  {\n    name: "AUDIO"\n    data_type: TYPE_FP32\n    dims: [ -1 ]\n  },\n'
            '  {\n    name: "SAMPLE_RATE"\n    data_type: TYPE_INT32\n    dims: [ 1 ]\n    optional: true\n  },\n'
            '  {\n    name: "TEXT"\n    data_type: TYPE_STRING\n    dims: [ 1 ]\n    optional: true\n  }\n]\n'
            'output [\n'
            f'  {{\n    name: "PROBABILITIES"\n    data_type: TYPE_FP32\n    dims: [ {len(labels)} ]\n  }},\n'
            '  {\n    name: "LABEL"\n    data_type: TYPE_STRING\n    dims: [ 1 ]\n  },\n'
            '  {\n    name: "RESULT"\n    data_type: TYPE_STRING\n    dims: [ 1 ]\n  }\n]\n'
            f'instance_group [\n  {{\n    count: {instances}\n    kind: KIND_CPU\n  }}\n]\n'
            f'parameters {{\n  key: "labels"\n  value: {{\n    string_value: "{",".join(labels)}"\n  }}\n}}\n')


def write_repository(bundle: str | os.PathLike[str], out: str | os.PathLike[str], *, backend: str = "onnxruntime",
                     max_batch: int = 8, instances: int = 1, overwrite: bool = False,
                     progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write the model repository for ``bundle`` (a folder or ``"default"``) at ``out``.

    Returns:
        ``{"models": {name: [files]}, "path": out}``.

    Raises:
        InputError: A bad backend or size, or ``out`` exists (without ``overwrite``).
        BundleError: ``--backend tensorrt`` for a bundle without engines (``edgeser engines`` first).
    """
    from edgeser import default
    from edgeser.model.writer import staged_folder

    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not 0 <= max_batch <= 1024 or instances < 1:
        raise InputError(f"max_batch must be 0-1024 and instances >= 1, got {max_batch} and {instances}")
    target = Path(out)
    check_out(target, overwrite)
    src = Bundle.load(default.resolve(bundle))
    m = src.manifest
    sections = {"speech": m.speech, "text": m.text, "fusion": m.fusion, "speaker_fusion": m.speaker_fusion}
    engines = {e.graph: e for e in m.engines}
    if backend == "tensorrt" and not engines:
        raise BundleError(f"{src.path}: has no TensorRT engines; build them on the serving GPU with `edgeser engines "
                          f"{src.path} --out ...` and write the repository from that bundle")
    models: dict[str, list[str]] = {}
    with staged_folder(target) as stage:
        for role, section in sections.items():
            if section is None:
                continue
            name = graph_model_name(role)
            version = stage / name / "1"
            version.mkdir(parents=True)
            engine = engines.get(role) if backend == "tensorrt" else None
            if backend == "tensorrt" and engine is None:
                raise BundleError(f"{src.path}: has no TensorRT engine for its {role} graph")
            file = "model.plan" if engine is not None else "model.onnx"
            shutil.copy2(src.path / (engine.file if engine is not None else section.graph), version / file)
            (stage / name / "config.pbtxt").write_text(graph_config(name, section.spec, backend, max_batch, instances))
            models[name] = ["config.pbtxt", f"1/{file}"]
            if progress:
                progress(f"{name}: {file}, {backend}, max batch {max_batch}")
        version = stage / PIPELINE / "1"
        version.mkdir(parents=True)
        (version / "model.py").write_text(MODEL_PY)
        shutil.copytree(src.path, version / "bundle")
        (stage / PIPELINE / "config.pbtxt").write_text(pipeline_config(m.labels, instances))
        models[PIPELINE] = ["config.pbtxt", "1/model.py", "1/bundle/"]
    return {"path": str(target), "backend": backend, "max_batch": max_batch, "models": models,
            "graphs": {r: graph_model_name(r) for r, s in sections.items() if s is not None}}


def predict_request(recognizer: Any, audio: Any, rate: Any | None, text: Any | None) -> Any:
    """One request of the ``edgeser`` model (the Python-backend pipeline and ``edgeser serve --triton``): ``AUDIO``,
    optional ``SAMPLE_RATE`` (16000) and ``TEXT`` (bytes or str; empty is none) as the arrays Triton gives."""
    samples = np.asarray(audio, dtype=np.float32).reshape(-1)
    sample_rate = int(np.asarray(rate).reshape(-1)[0]) if rate is not None else 16_000
    transcript = None
    if text is not None:
        raw = np.asarray(text).reshape(-1)[0]
        transcript = (raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)) or None
    return recognizer.predict(samples, transcript, sample_rate=sample_rate)


def prediction_outputs(prediction: Any, labels: Sequence[str]) -> dict[str, Any]:
    """The ``edgeser`` model's outputs: ``PROBABILITIES`` (float32, in ``labels`` order), ``LABEL`` and ``RESULT``
    (the prediction as JSON, as ``edgeser predict --json`` prints it), as UTF-8 bytes."""
    result = json.dumps(prediction.to_dict(), ensure_ascii=False, allow_nan=False)
    return {"PROBABILITIES": np.array([prediction.probabilities[k] for k in labels], dtype=np.float32),
            "LABEL": np.array([prediction.label.encode()], dtype=np.object_),
            "RESULT": np.array([result.encode()], dtype=np.object_)}
