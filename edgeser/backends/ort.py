"""ONNX Runtime backend (CPU by default; CUDA/TensorRT providers where installed)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgeser._optional import onnxruntime
from edgeser.backends.base import NamedGraph
from edgeser.errors import BackendUnavailableError, BundleError
from edgeser.options import RuntimeOptions


class OrtBackend(NamedGraph):
    """Runs one ONNX graph with ONNX Runtime."""

    def __init__(self, path: Path, options: RuntimeOptions) -> None:
        ort = onnxruntime()
        available = ort.get_available_providers()
        missing = [p for p in options.providers if p not in available]
        if missing:
            raise BackendUnavailableError(
                f"ONNX Runtime here offers {available}, not {missing}. For CUDA install onnxruntime-gpu "
                "(on Jetson: the onnxruntime-gpu wheel built for your JetPack); or use RuntimeOptions.cpu()")
        self._path = path
        so = ort.SessionOptions()
        so.intra_op_num_threads = options.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            extra = {name: dict(opts) for name, opts in options.provider_options}
            providers = [(p, extra[p]) if p in extra else p for p in options.providers]
            self._session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for bad graphs
            raise BundleError(f"{path}: ONNX Runtime cannot load this graph ({e}); re-export the bundle") from e
        self._inputs = tuple(i.name for i in self._session.get_inputs())
        self._outputs = tuple(o.name for o in self._session.get_outputs())
        self.tensors = {t.name: (t.type, list(t.shape)) for t in (*self._session.get_inputs(),
                                                                   *self._session.get_outputs())}
        """Each input's and output's ONNX Runtime type (``"tensor(float)"``) and shape (ints, names or None)."""

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self._session.get_modelmeta().custom_metadata_map)

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers())

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            outputs = self._session.run(None, dict(feeds))
        except Exception as e:  # onnxruntime's own exception types: a graph that fails on these inputs
            raise BundleError(f"{self._path}: ONNX Runtime failed running this graph ({str(e)[:300]}); check the "
                              "bundle with `edgeser inspect`") from e
        return dict(zip(self._outputs, outputs, strict=True))
