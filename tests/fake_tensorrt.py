"""A stand-in for ``tensorrt`` and CUDA's runtime (``cuda.bindings.runtime``), so that CI runs the code paths of
``edgeser/backends/trt.py`` and ``edgeser_export/tensorrt.py`` (bindings, shapes, optimization profiles, buffers,
errors) without a GPU.

It implements only the TensorRT 10 / cuda-python calls those modules make, with their documented signatures and
return conventions (``(err, value)`` tuples from cudart). An "engine" is the source ONNX graph plus its profile,
run by ONNX Runtime on the CPU; "device memory" is host memory behind integer pointers. Its parser refuses what
TensorRT's is documented to refuse (integer ops such as MatMulInteger, Q/DQ that is not signed INT8 with zero
point 0). Passing these tests shows edgeser calls the API consistently; it says nothing about TensorRT itself.
"""

from __future__ import annotations

import ctypes
import enum
import json
import types
from typing import Any

import numpy as np

__version__ = "10.99.0-fake"


class Logger:
    WARNING = 2

    def __init__(self, severity: int = 2) -> None:
        self.severity = severity


class TensorIOMode(enum.Enum):
    INPUT = 1
    OUTPUT = 2


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    INT64 = 8
    BF16 = 7
    FP8 = 6


_ORT_TO_TRT = {"tensor(float)": DataType.FLOAT, "tensor(float16)": DataType.HALF, "tensor(int64)": DataType.INT64,
               "tensor(int32)": DataType.INT32, "tensor(bool)": DataType.BOOL, "tensor(int8)": DataType.INT8}


class NetworkDefinitionCreationFlag(enum.IntEnum):
    STRONGLY_TYPED = 5


class MemoryPoolType(enum.Enum):
    WORKSPACE = 0


# ---- builder side ----

class _Network:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.onnx: bytes | None = None


class OnnxParser:
    """Parses with the ``onnx`` package and refuses what TensorRT's parser documents as unsupported."""

    REFUSED = frozenset({"MatMulInteger", "ConvInteger", "QLinearMatMul", "QLinearConv", "DynamicQuantizeLinear"})

    def __init__(self, network: _Network, logger: Logger) -> None:
        self.network, self._errors = network, list[str]()

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, i: int) -> str:
        return self._errors[i]

    def parse_from_file(self, path: str) -> bool:
        import onnx
        from onnx import numpy_helper

        data = open(path, "rb").read()
        model = onnx.load_from_string(data)
        consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        for n in model.graph.node:
            if n.op_type in self.REFUSED:
                self._errors.append(f"{n.name}: no importer for op {n.op_type}")
            elif n.op_type in ("QuantizeLinear", "DequantizeLinear"):
                zp = consts.get(n.input[2]) if len(n.input) > 2 else None
                if zp is None or zp.dtype != np.int8 or np.any(zp != 0):
                    self._errors.append(f"{n.name}: only symmetric INT8 quantization is supported")
        self.network.onnx = data
        return not self._errors


class _TimingCache:
    def __init__(self, data: bytes) -> None:
        self.data = data or b"fake-timing-cache"

    def serialize(self) -> bytes:
        return self.data


class _Profile:
    def __init__(self) -> None:
        self.shapes: dict[str, list[list[int]]] = {}

    def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
        self.shapes[name] = [list(lo), list(opt), list(hi)]


class _BuilderConfig:
    def __init__(self) -> None:
        self.profiles: list[_Profile] = []
        self.cache: _TimingCache | None = None
        self.pools: dict[Any, int] = {}

    def set_memory_pool_limit(self, pool: MemoryPoolType, size: int) -> None:
        self.pools[pool] = size

    def create_timing_cache(self, data: bytes) -> _TimingCache:
        return _TimingCache(data)

    def set_timing_cache(self, cache: _TimingCache, ignore_mismatch: bool) -> bool:
        self.cache = cache
        return True

    def get_timing_cache(self) -> _TimingCache | None:
        return self.cache

    def add_optimization_profile(self, profile: _Profile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1


class Builder:
    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    def create_network(self, flags: int) -> _Network:
        return _Network(flags)

    def create_builder_config(self) -> _BuilderConfig:
        return _BuilderConfig()

    def create_optimization_profile(self) -> _Profile:
        return _Profile()

    def build_serialized_network(self, network: _Network, config: _BuilderConfig) -> bytes | None:
        """The "plan": a JSON header (the profile) and the ONNX bytes; ``None`` (as TensorRT) when an input has
        no profile or the network is not strongly typed."""
        import onnx

        if network.onnx is None or not config.profiles or not network.flags & (1 << 5):
            return None
        inputs = [i.name for i in onnx.load_from_string(network.onnx).graph.input]
        if any(name not in config.profiles[0].shapes for name in inputs):
            return None
        header = json.dumps({"profile": config.profiles[0].shapes}).encode()
        return b"FAKEPLAN" + len(header).to_bytes(4, "little") + header + network.onnx


# ---- runtime side ----

class Runtime:
    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    def deserialize_cuda_engine(self, plan: bytes) -> _Engine | None:
        if not plan.startswith(b"FAKEPLAN"):
            return None
        size = int.from_bytes(plan[8:12], "little")
        header = json.loads(plan[12 : 12 + size])
        return _Engine(plan[12 + size :], header["profile"])


class _Engine:
    def __init__(self, onnx_bytes: bytes, profile: dict[str, list[list[int]]]) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        self.profile = profile
        self._io = [(t, TensorIOMode.INPUT) for t in self.session.get_inputs()] + \
                   [(t, TensorIOMode.OUTPUT) for t in self.session.get_outputs()]

    @property
    def num_io_tensors(self) -> int:
        return len(self._io)

    def get_tensor_name(self, i: int) -> str:
        return str(self._io[i][0].name)

    def _tensor(self, name: str) -> tuple[Any, TensorIOMode]:
        return next(t for t in self._io if t[0].name == name)

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return self._tensor(name)[1]

    def get_tensor_dtype(self, name: str) -> DataType:
        return _ORT_TO_TRT[self._tensor(name)[0].type]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) else -1 for d in self._tensor(name)[0].shape)

    def create_execution_context(self) -> _Context:
        return _Context(self)


class _Context:
    def __init__(self, engine: _Engine) -> None:
        self.engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self._results: dict[str, np.ndarray] | None = None

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        lo, _, hi = self.engine.profile[name]
        if len(shape) != len(lo) or any(not a <= s <= b for s, a, b in zip(shape, lo, hi, strict=True)):
            return False  # outside the optimization profile, as TensorRT reports it
        self.shapes[name], self._results = tuple(shape), None
        return True

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = ptr
        return True

    def _inputs(self) -> dict[str, np.ndarray]:
        feeds = {}
        for t in self.engine.session.get_inputs():
            dtype = np.dtype(_NUMPY[_ORT_TO_TRT[t.type]])
            shape = self.shapes[t.name]
            n = int(np.prod(shape)) * dtype.itemsize
            feeds[t.name] = np.frombuffer(bytes(DEVICE.memory[self.addresses[t.name]][:n]), dtype).reshape(shape)
        return feeds

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if name in self.shapes:
            return self.shapes[name]
        if self._results is None:  # output shapes follow from the input shapes (and, here, the input data)
            outputs = [o.name for o in self.engine.session.get_outputs()]
            self._results = dict(zip(outputs, self.engine.session.run(outputs, self._inputs()), strict=True))
        return tuple(self._results[name].shape)

    def execute_async_v3(self, stream: int) -> bool:
        if stream not in DEVICE.streams:
            return False
        outputs = [o.name for o in self.engine.session.get_outputs()]
        results = dict(zip(outputs, self.engine.session.run(outputs, self._inputs()), strict=True))
        for name, value in results.items():
            data = np.ascontiguousarray(value).tobytes()
            DEVICE.memory[self.addresses[name]][: len(data)] = data
        self.executions = getattr(self, "executions", 0) + 1
        return True


_NUMPY = {DataType.FLOAT: "float32", DataType.HALF: "float16", DataType.INT8: "int8", DataType.INT32: "int32",
          DataType.INT64: "int64", DataType.BOOL: "bool", DataType.UINT8: "uint8"}


def nptype(dtype: DataType) -> type:
    """As TensorRT's: a numpy scalar type (the real one has none for bf16/fp8; edgeser no longer calls it)."""
    return np.dtype(_NUMPY.get(dtype, "float64")).type


# ---- CUDA's runtime ----

class _Device:
    """Host memory behind integer "device pointers", and the streams that exist."""

    def __init__(self) -> None:
        self.memory: dict[int, bytearray] = {}
        self.streams: set[int] = set()
        self._next = 0x1000

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def new_handle(self) -> int:
        self._next += 0x1000
        return self._next


DEVICE = _Device()


class cudaMemcpyKind(enum.Enum):
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2


def cudaMalloc(size: int) -> tuple[int, int]:
    ptr = DEVICE.new_handle()
    DEVICE.memory[ptr] = bytearray(size)
    return 0, ptr


def cudaFree(ptr: int) -> tuple[int]:
    return (0,) if DEVICE.memory.pop(ptr, None) is not None else (1,)


def cudaMemcpyAsync(dst: int, src: int, size: int, kind: cudaMemcpyKind, stream: int) -> tuple[int]:
    if stream not in DEVICE.streams:
        return (400,)  # cudaErrorInvalidResourceHandle
    if kind is cudaMemcpyKind.cudaMemcpyHostToDevice:
        DEVICE.memory[dst][:size] = ctypes.string_at(src, size)
    else:
        ctypes.memmove(dst, bytes(DEVICE.memory[src][:size]), size)
    return (0,)


def cudaStreamCreate() -> tuple[int, int]:
    stream = DEVICE.new_handle()
    DEVICE.streams.add(stream)
    return 0, stream


def cudaStreamSynchronize(stream: int) -> tuple[int]:
    return (0,) if stream in DEVICE.streams else (400,)


def cudaStreamDestroy(stream: int) -> tuple[int]:
    if stream not in DEVICE.streams:
        return (400,)
    DEVICE.streams.discard(stream)
    return (0,)


def cudaGetDeviceProperties(device: int) -> tuple[int, Any]:
    return 0, types.SimpleNamespace(name=b"Fake GPU", major=8, minor=7)


def install(monkeypatch: Any) -> types.ModuleType:
    """Put this module in place of ``tensorrt`` and ``cuda.bindings.runtime`` (a pytest ``monkeypatch``)."""
    import sys

    this = sys.modules[__name__]
    cuda = types.ModuleType("cuda")
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = this  # type: ignore[attr-defined]
    cuda.bindings = bindings  # type: ignore[attr-defined]
    for name, module in (("tensorrt", this), ("cuda", cuda), ("cuda.bindings", bindings),
                         ("cuda.bindings.runtime", this)):
        monkeypatch.setitem(sys.modules, name, module)
    DEVICE.reset()
    return this
