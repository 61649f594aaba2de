"""The Triton Python-backend model that ``edgeser triton`` writes (``REPO/edgeser/1/model.py`` imports this).

It loads the bundle copied beside it once per instance and runs the edgeser pipeline on each request, with the
graphs served by their own Triton models (``edgeser_speech``, ``edgeser_text``, ``edgeser_fusion``) through
business-logic scripting (``triton_python_backend_utils.InferenceRequest(...).exec()``). Only Triton's Python
backend provides that module; the tests run this class against a stand-in for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgeser.backends.base import NamedGraph
from edgeser.errors import EdgeserError
from edgeser.serving.triton import graph_model_name, predict_request, prediction_outputs


class BlsGraph(NamedGraph):
    """A graph model on the same Triton server, with the interface of :class:`edgeser.backends.OrtBackend`."""

    def __init__(self, pb_utils: Any, model: str, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> None:
        self._pb, self._model, self._inputs, self._outputs = pb_utils, model, inputs, outputs

    @property
    def metadata(self) -> dict[str, str]:
        return {}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        pb = self._pb
        request = pb.InferenceRequest(model_name=self._model,
                                      inputs=[pb.Tensor(n, np.ascontiguousarray(feeds[n])) for n in self._inputs],
                                      requested_output_names=list(self._outputs))
        response = request.exec()
        if response.has_error():
            raise EdgeserError(f"Triton model {self._model}: {response.error().message()}")
        return {n: pb.get_output_tensor_by_name(response, n).as_numpy() for n in self._outputs}


class TritonPythonModel:
    """Triton's Python-backend entry points: ``initialize``, ``execute``, ``finalize``."""

    def initialize(self, args: Mapping[str, str]) -> None:
        import triton_python_backend_utils as pb_utils

        from edgeser.options import RuntimeOptions
        from edgeser.recognizer import EmotionRecognizer

        self.pb = pb_utils
        folder = Path(args["model_repository"]) / str(args["model_version"]) / "bundle"

        def graphs(role: str, section: Any) -> BlsGraph:
            return BlsGraph(pb_utils, graph_model_name(role), section.spec.input_names, section.spec.output_names)

        self.recognizer = EmotionRecognizer.from_bundle(folder, RuntimeOptions(verify_hashes=True), graphs=graphs)
        self.labels = list(self.recognizer.bundle.manifest.labels)

    def execute(self, requests: list[Any]) -> list[Any]:
        pb = self.pb
        responses = []
        for request in requests:
            try:
                prediction = predict_request(self.recognizer, *(self._input(request, name)
                                                                for name in ("AUDIO", "SAMPLE_RATE", "TEXT")))
            except EdgeserError as e:  # one clear message for the client; the server goes on
                responses.append(pb.InferenceResponse(output_tensors=[], error=pb.TritonError(str(e))))
                continue
            outputs = prediction_outputs(prediction, self.labels)
            responses.append(pb.InferenceResponse(output_tensors=[pb.Tensor(k, v) for k, v in outputs.items()]))
        return responses

    def _input(self, request: Any, name: str) -> Any:
        tensor = self.pb.get_input_tensor_by_name(request, name)
        return None if tensor is None else tensor.as_numpy()

    def finalize(self) -> None:
        self.recognizer = None  # type: ignore[assignment]
