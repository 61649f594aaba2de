"""TensorRT backend: runs a serialized engine from a bundle. UNTESTED ON A GPU.

Written against the documented TensorRT 10 Python API (``Runtime.deserialize_cuda_engine``, named I/O
tensors, ``IExecutionContext.set_input_shape`` / ``set_tensor_address`` / ``execute_async_v3``) with CUDA
memory through cuda-python; no GPU has been lent to this project, so it has never run. Engines are not
portable across TensorRT versions or GPUs: :func:`check_engine` refuses a mismatch before loading, and the
recognizer refuses an engine whose record names another source graph (``onnx_sha256``). CI runs this module's
code paths (bindings, shapes, profiles, errors) against a fake ``tensorrt`` and CUDA (``tests/fake_tensorrt.py``)
that executes the source ONNX graph with ONNX Runtime; that checks the calls, not TensorRT.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgeser._optional import require
from edgeser.backends.base import NamedGraph
from edgeser.errors import BackendError, BackendUnavailableError, BundleError, InputError
from edgeser.model.bundle import EngineEntry
from edgeser.model.specs import GraphSpec

_INSTALL = "JetPack's TensorRT on Jetson (python3-libnvinfer), NVIDIA's tensorrt wheels elsewhere; plus cuda-python"


def tensorrt(purpose: str = "the TensorRT backend") -> Any:
    """The ``tensorrt`` module, refused in one line when it is older than TensorRT 10: edgeser's builder and runtime
    are written against TensorRT 10's API (named I/O tensors, ``execute_async_v3``, strongly typed networks), which
    JetPack 6.1 and later ship; JetPack 5.x (TensorRT 8.5) and 6.0 (TensorRT 8.6) do not have it.

    Raises:
        BackendUnavailableError: Not installed, or older than 10.
    """
    trt = require("tensorrt", "trt", purpose, install=_INSTALL)
    version = str(getattr(trt, "__version__", "0"))
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = 0
    if major < 10:
        raise BackendUnavailableError(
            f"{purpose} needs TensorRT 10 or later (JetPack 6.1+); this machine has TensorRT {version} (JetPack 5.x "
            "ships 8.5, JetPack 6.0 ships 8.6). Use ONNX Runtime's TensorRT provider instead (--backend "
            "ort-tensorrt, RuntimeOptions.ort_tensorrt()), or upgrade JetPack")
    return trt


def check_engine(entry: EngineEntry, trt_version: str, gpu: str, capability: str) -> None:
    """Raise :class:`BundleError` when ``entry`` was built for another TensorRT version or GPU."""
    problems = []
    if entry.tensorrt_version != trt_version:
        problems.append(f"TensorRT {entry.tensorrt_version} (this machine has {trt_version})")
    if entry.compute_capability != capability or entry.gpu != gpu:
        problems.append(f"{entry.gpu}, compute capability {entry.compute_capability} "
                        f"(this machine has {gpu}, {capability})")
    if problems:
        raise BundleError(f"{entry.file}: this TensorRT engine was built for {' and '.join(problems)}; engines "
                          "are not portable. Rebuild it here with `edgeser engines BUNDLE --out ...`, or run the "
                          "bundle with ONNX Runtime (RuntimeOptions.cpu() / .cuda())")


class TrtBackend(NamedGraph):
    """One TensorRT engine, with the interface of :class:`edgeser.backends.OrtBackend`.

    Inputs are copied to device buffers sized for the current shapes, the engine runs on its own CUDA
    stream, outputs are copied back; buffers grow as needed and are reused between calls.
    """

    def __init__(self, path: Path, entry: EngineEntry) -> None:
        trt = tensorrt()
        self._cudart = _cudart()
        gpu, capability = _gpu_identity(self._cudart)
        check_engine(entry, str(trt.__version__), gpu, capability)
        self._trt, self._path = trt, path
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise BundleError(f"{path}: TensorRT could not deserialize this engine; rebuild it")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_input = {n: self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self._inputs = tuple(n for n in names if is_input[n])
        self._outputs = tuple(n for n in names if not is_input[n])
        self._dtypes = {n: numpy_dtype(trt, n, self._engine.get_tensor_dtype(n)) for n in names}
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        err, self._stream = self._cudart.cudaStreamCreate()
        _check(err, "cudaStreamCreate")

    @property
    def metadata(self) -> dict[str, str]:
        """Engines carry no ONNX metadata: the record's ``onnx_sha256`` ties the engine to its graph instead."""
        return {}

    def check_spec(self, spec: GraphSpec) -> None:
        """The engine's tensors' types and ranks against bundle.json's spec (:class:`BundleError`); the recognizer
        has checked their names first, as for every backend."""
        for t in (*spec.inputs, *spec.outputs):
            rank = len(self._engine.get_tensor_shape(t.name))
            if self._dtypes[t.name] != np.dtype(t.dtype) or rank != len(t.dims):
                raise BundleError(f"{self._path}: engine tensor {t.name!r} is {self._dtypes[t.name]} of rank {rank}, "
                                  f"bundle.json declares {t.dtype} of rank {len(t.dims)}; rebuild the engine")

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                _check(self._cudart.cudaFree(ptr)[0], "cudaFree")
            err, ptr = self._cudart.cudaMalloc(max(nbytes, 1))
            _check(err, "cudaMalloc")
            self._buffers[name] = (ptr, nbytes)
        return int(ptr)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart = self._cudart
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self._inputs:
            host = np.ascontiguousarray(feeds[name], dtype=self._dtypes[name])
            if not self._context.set_input_shape(name, host.shape):
                raise InputError(f"input {name!r} shape {host.shape} is outside the engine's optimization profile; "
                                 "rebuild the engine with a wider profile (edgeser engines --max-audio-s ...)")
            ptr = self._buffer(name, host.nbytes)
            _check(cudart.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, h2d, self._stream)[0], "cudaMemcpyAsync")
            self._context.set_tensor_address(name, ptr)
        outputs = {}
        for name in self._outputs:
            shape = tuple(self._context.get_tensor_shape(name))
            outputs[name] = np.empty(shape, dtype=self._dtypes[name])
            self._context.set_tensor_address(name, self._buffer(name, outputs[name].nbytes))
        if not self._context.execute_async_v3(self._stream):
            raise BackendError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        for name, host in outputs.items():
            ptr = self._buffers[name][0]
            _check(cudart.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, d2h, self._stream)[0], "cudaMemcpyAsync")
        _check(cudart.cudaStreamSynchronize(self._stream)[0], "cudaStreamSynchronize")
        return outputs

    def close(self) -> None:
        """Free the device buffers and the CUDA stream (also done when the backend is collected)."""
        for ptr, _ in getattr(self, "_buffers", {}).values():
            self._cudart.cudaFree(ptr)
        self._buffers = {}
        stream = getattr(self, "_stream", None)
        if stream is not None:
            self._cudart.cudaStreamDestroy(stream)
            self._stream = None

    def __del__(self) -> None:
        if hasattr(self, "_cudart"):
            self.close()


NUMPY_TYPES = {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32", "INT64": "int64",
               "BOOL": "bool", "UINT8": "uint8"}
"""TensorRT data types (by name) that have a numpy type; bf16, fp8 and int4 tensors have none."""


def numpy_dtype(trt: Any, tensor: str, dtype: Any) -> np.dtype[Any]:
    """The numpy type of an engine tensor, or :class:`BackendError` naming the tensor and its TensorRT type
    (``np.dtype(trt.nptype(t))`` turned unknown types into float64 without a word)."""
    name = getattr(dtype, "name", str(dtype)).rsplit(".", 1)[-1]
    if name not in NUMPY_TYPES:
        raise BackendError(f"engine tensor {tensor!r} has TensorRT type {name}, which has no numpy type here "
                           f"(supported: {', '.join(NUMPY_TYPES)}); build the engine with such inputs and outputs")
    return np.dtype(NUMPY_TYPES[name])


def _check(err: Any, what: str) -> None:
    if int(err) != 0:
        raise BackendError(f"{what} failed with CUDA error {err}")


def _gpu_identity(cudart: Any) -> tuple[str, str]:
    err, prop = cudart.cudaGetDeviceProperties(0)
    if int(err) != 0:
        raise BackendUnavailableError(f"no CUDA device (cudaGetDeviceProperties returned {err}); run the bundle "
                                      "with ONNX Runtime on the CPU (RuntimeOptions.cpu())")
    name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
    return name.strip("\x00 "), f"{prop.major}.{prop.minor}"


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        cudart = require("cuda.cudart", "trt", "the TensorRT backend (CUDA memory)", install="pip install cuda-python")
    return cudart
