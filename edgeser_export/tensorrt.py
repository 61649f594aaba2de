"""TensorRT engines from a bundle's ONNX graphs (TensorRT 10 Python API). UNTESTED ON A GPU.

Written against the documented TensorRT 10 API (``tensorrt.Builder``, ``OnnxParser``, strongly typed
networks, optimization profiles, ``ITimingCache``); no GPU has been lent to this project, so none of this
has run. The tests that need it are marked ``gpu`` and skip with the reason.

- The network is **strongly typed** (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``): precisions come
  from the graph itself, so build from a Q/DQ INT8 or FP16 variant (``edgeser quantize``), not by builder
  flags. An FP32 graph gives an FP32 (TF32 where allowed) engine.
- One optimization profile per graph, derived from its spec: batch ``1..max_batch`` (8, the batch that
  ``edgeser bench --batch`` and ``edgeser triton --max-batch`` use; opt 1), audio seconds
  ``min/opt/max`` for the speech graph's time axis, token counts for the text graph, segment counts for
  the fusion graph.
- A persistent timing cache (one file per GPU and TensorRT version) makes rebuilds fast.
- Each engine is recorded in ``bundle.json`` with the TensorRT version, GPU name and compute capability;
  :class:`edgeser.backends.trt.TrtBackend` refuses an engine built for another version or GPU, and the
  recognizer one built from another graph (the record's ``onnx_sha256``).
- What the parser imports of a quantized graph (:func:`tensorrt_qdq_problems`) is checked on the graph itself, with
  no TensorRT: that part has run (``edgeser quantize --target tensorrt`` and its tests).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeser.backends.trt import tensorrt
from edgeser.errors import BundleError
from edgeser.model.bundle import Bundle, EngineEntry
from edgeser.model.specs import GraphSpec
from edgeser.model.writer import write_bundle

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)


TENSORRT_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
"""Quantization ops a ``--target tensorrt`` graph may hold: TensorRT's ONNX parser imports explicit Q/DQ with
symmetric signed INT8 (zero point 0) and not the integer ops (MatMulInteger, ConvInteger, QLinear*) nor QUInt8."""
TENSORRT_REFUSED_OPS = frozenset({"MatMulInteger", "ConvInteger", "QLinearMatMul", "QLinearConv",
                                  "DynamicQuantizeLinear", "QLinearAdd", "QLinearMul"})


def tensorrt_qdq_problems(model: onnx.ModelProto) -> list[str]:
    """What TensorRT's ONNX parser would refuse in ``model``'s quantization: integer ops, and Q/DQ nodes whose zero
    point is not a signed INT8 zero. A QuantizeLinear without a zero point quantizes to uint8 (ONNX's default),
    so it is refused; a DequantizeLinear without one is accepted when its input is a constant of INT8."""
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute:
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    problems = [f"{n.name or n.op_type}: {n.op_type}" for n in model.graph.node if n.op_type in TENSORRT_REFUSED_OPS]
    for n in model.graph.node:
        if n.op_type not in TENSORRT_OPS:
            continue
        zp = consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if zp is None:
            x = consts.get(n.input[0])
            if not (n.op_type == "DequantizeLinear" and x is not None and x.dtype == np.int8):
                problems.append(f"{n.name}: {n.op_type} without an INT8 zero point")
        elif zp.dtype != np.int8 or np.any(zp != 0):
            problems.append(f"{n.name}: {n.op_type} zero point {zp.dtype} {zp.ravel()[:4].tolist()} (needs int8 0)")
    return problems


@dataclass(frozen=True)
class ProfileConfig:
    """The shapes an engine must accept (min/opt/max)."""

    audio_s: tuple[float, float, float] = (0.5, 4.0, 30.0)
    tokens: tuple[int, int, int] = (2, 32, 128)
    segments: tuple[int, int, int] = (1, 16, 256)  # phones/syllables/words per utterance (frames follow audio)
    max_batch: int = 8  # as edgeser bench --batch and edgeser triton --max-batch use
    workspace_gib: float = 2.0


def profile_shapes(spec: GraphSpec, frames_per_s: float, sample_rate: int, config: ProfileConfig
                   ) -> dict[str, list[list[int]]]:
    """``{input: [min, opt, max]}`` for each input of ``spec``, from its axis names: ``batch`` →
    ``1..max_batch``; ``samples`` → the audio seconds; ``frames`` (the fusion graph's frame level) → the
    same seconds in encoder frames; ``tokens`` → the token counts; any other named axis (``phones``,
    ``syllables``, ``words``) → the segment counts. Fixed sizes stay as they are."""
    ranges: dict[str, tuple[int, int, int]] = {
        "batch": (1, 1, config.max_batch),
        "samples": tuple(round(s * sample_rate) for s in config.audio_s),  # type: ignore[dict-item]
        "frames": tuple(max(1, int(s * frames_per_s)) for s in config.audio_s),  # type: ignore[dict-item]
        "tokens": config.tokens,
    }
    shapes: dict[str, list[list[int]]] = {}
    for t in spec.inputs:
        dims = [(d, d, d) if isinstance(d, int) else ranges.get(d, config.segments) for d in t.dims]
        shapes[t.name] = [[d[i] for d in dims] for i in range(3)]
    return shapes


def gpu_identity() -> tuple[str, str]:
    """``(GPU name, compute capability)`` of device 0, as the runtime checks them."""
    from edgeser.backends.trt import _cudart, _gpu_identity

    return _gpu_identity(_cudart())


def build_engine(onnx_path: Path, shapes: dict[str, list[list[int]]], out: Path, timing_cache: Path | None,
                 workspace_gib: float = 2.0) -> None:
    """Parse ``onnx_path`` into a strongly typed network and write the serialized engine to ``out``.

    Raises:
        BackendUnavailableError: TensorRT is not installed.
        BundleError: The parser or builder failed (their messages are included).
    """
    trt = tensorrt("building TensorRT engines")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BundleError(f"{onnx_path}: TensorRT's ONNX parser failed: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    cache_bytes = timing_cache.read_bytes() if timing_cache is not None and timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BundleError(f"{onnx_path}: TensorRT could not build an engine (see its log above)")
    out.write_bytes(bytes(serialized))
    if timing_cache is not None:
        timing_cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = timing_cache.with_name(timing_cache.name + ".tmp")
        tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
        tmp.replace(timing_cache)


def build_bundle_engines(bundle: str | Path, out: str | Path, *, graphs: tuple[str, ...] = ("speech", "text", "fusion"),
                         config: ProfileConfig | None = None, timing_cache_dir: Path | None = None,
                         overwrite: bool = False, progress: Callable[[str], None] = log.info) -> Path:
    """A copy of ``bundle`` at ``out`` with a TensorRT engine for each of ``graphs`` it has, recorded in
    ``bundle.json``. Needs TensorRT and a GPU (untested: see the module docstring)."""
    trt = tensorrt("building TensorRT engines")
    config = config or ProfileConfig()
    src = Bundle.load(bundle)
    m = src.manifest
    gpu, capability = gpu_identity()
    sections = {"speech": m.speech, "text": m.text, "fusion": m.fusion}
    cache_dir = timing_cache_dir or Path.home() / ".cache" / "edgeser" / "trt-timing"
    cache = cache_dir / f"{gpu.replace(' ', '_')}-sm{capability}-trt{trt.__version__}.cache"
    engines = []
    with write_bundle(out, overwrite=overwrite) as writer:
        for name in m.files:
            shutil.copy2(src.path / name, writer.path(name))
        for g in graphs:
            section = sections[g]
            if section is None:
                continue
            frames_per_s = 1 / m.speech.frames.hop_s if m.speech else 50.0
            rate = m.speech.frames.sample_rate if m.speech else 16000
            shapes = profile_shapes(section.spec, frames_per_s, rate, config)
            file = f"engines/{g}.plan"
            progress(f"{g}: building a TensorRT engine for {gpu} (sm {capability}), profile {shapes}")
            build_engine(src.path / section.graph, shapes, writer.path(file), cache, config.workspace_gib)
            precision = section.provenance.get("quantization", {}).get("precision", "fp32")
            engines.append(EngineEntry(graph=g, file=file, tensorrt_version=str(trt.__version__), gpu=gpu,
                                       compute_capability=capability, precision=precision, profile=shapes,
                                       timing_cache=str(cache), onnx_sha256=m.files[section.graph].sha256))
        writer.finish(replace(m, engines=tuple(engines)))
    return Path(out)
