"""Lower-precision variants of a bundle: static INT8 (Q/DQ, calibrated), dynamic INT8, FP16; with a guard.

- ``int8``: ONNX Runtime static quantization in the Q/DQ format: int8 per-channel weights, uint8
  activations whose ranges come from a calibration set (``minmax``, ``entropy`` or ``percentile``). The
  Q/DQ graph is also what TensorRT builds INT8 engines from (strongly typed network).
- ``int8-dynamic``: int8 weights, activation ranges computed per call; MatMul/Gemm only (integer
  convolutions, ConvInteger, are slower than float ones on the CPU provider). For CPUs.
- ``fp16``: weights and activations in float16, float32 inputs and outputs kept. For GPUs; the CPU
  provider runs many float16 ops through casts, slowly.

At every precision a graph's signal-processing front end stays float32: the nodes the exporter placed in
the ``log_mel`` scope (Whisper's STFT, power, mel filterbank and log; :func:`front_end_nodes`), and the
audio reaches them unrounded. Whisper's log-mel keeps 80 dB of each utterance's dynamic range; an 8-bit
or float16 STFT basis, audio or power spectrum raises the floor of quiet bins into that range (on the
default, FP16 of the whole graph, front end included, lost 8.3 UA over the five folds, in an earlier run of
``precision_folds.json``).

The guard compares every variant with its FP32 parent before anything is written: on the calibration
utterances, the agreement of each graph's outputs (cosine of hidden states, CTC frame agreement); on a
labelled validation set (utterances not in the calibration set), the UA of the fused model. When UA drops
more than the budget, the most sensitive quantized nodes (lowest signal-to-quantization-noise ratio of
their input activations, from ONNX Runtime's ``qdq_loss_debug``) are kept in float, a step at a time, until
the budget holds; what was kept and why is recorded. A variant that still fails raises
:class:`QuantizationError` and nothing is written.

The graph is quantized by ONNX Runtime's tools; TensorRT engines are built from the result by
:mod:`edgeser_export.tensorrt`.
"""

from __future__ import annotations

import io
import itertools
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import onnx

import edgeser
from edgeser import EmotionRecognizer, RuntimeOptions
from edgeser.audio import load_audio
from edgeser.audio.vad import Voicing, voicing
from edgeser.datasets import Dataset
from edgeser.errors import EdgeserError, InputError
from edgeser.model.bundle import Manifest
from edgeser.model.writer import write_bundle
from edgeser.system import INT8_TARGETS, cpu_flags, cpu_model, int8_method, int8_target
from edgeser_calibration import readers
from edgeser_calibration.readers import OrtReader
from edgeser_calibration.sets import CalibrationSet
from edgeser_export.guard import (
    UnseenSpeakers,
    blind_validation,
    evaluate_ua,
    mean_output_agreement,
    run_graph,
    speech_frames,
)
from edgeser_export.progress import Ticker
from edgeser_export.storage import fp16_weights
from edgeser_export.tensorrt import tensorrt_qdq_problems

log = logging.getLogger(__name__)

PRECISIONS = ("int8", "int8-dynamic", "fp16")
METHODS = ("auto", "minmax", "entropy", "percentile", "dynamic")
"""How ``int8`` finds its activation ranges: ``auto`` is the target's (:func:`edgeser.system.int8_method`);
``minmax``, ``entropy`` and ``percentile`` are ONNX Runtime's calibration methods, applied to every quantized node;
``dynamic`` calibrates only the convolutions (by :data:`DYNAMIC_CONV_METHOD`) and leaves the MatMul/Gemm inputs to
ONNX Runtime's dynamic quantization, which takes each input's own range when the graph runs (no calibrated range to
clip or to waste on rare outliers; weights are quantized per channel as in every static variant), and keeps the
first convolution, which reads the log-mel, in float32 (:func:`first_convolution`). Unlike the
``int8-dynamic`` precision (no calibration set, per-tensor weights, convolutions left in float, no fallback), it
keeps the guard's fallback to float nodes."""
DYNAMIC_CONV_METHOD = "percentile"
"""The calibration method of the convolutions in a ``dynamic`` variant. They stay static: ONNX Runtime's dynamic
ConvInteger ran slower than float32 convolution on the default's two convolutions (an AVX2-only CPU; a profile
made while choosing, not a committed result)."""
HISTOGRAM_METHODS = ("entropy", "percentile", "dynamic")
"""Methods that calibrate with ONNX Runtime's histogram calibrators (``dynamic``: its convolutions): those stack
every feed's tensors, so they get feeds of one length (:meth:`edgeser_calibration.readers.OrtReader.equal_lengths`)."""
STATIC_OPS = ("MatMul", "Gemm", "Conv")
FRONT_END_SCOPES = ("log_mel",)  # module names (torch.onnx name scopes) kept in float32 at every precision
DYNAMIC_OPS = ("MatMul", "Gemm")
TARGETS = ("auto", *INT8_TARGETS, "tensorrt")
"""``auto``: this CPU's scheme (:func:`edgeser.system.int8_target`); ``cpu-vnni``: x86 with VNNI or AMX, and what
runs fastest in ONNX Runtime there (uint8 activations with zero points, symmetric 8-bit weights); ``cpu-avx2``: the
same with 7-bit weights (ONNX Runtime's ``reduce_range``), which cannot saturate the 16-bit sums of x86 CPUs
without VNNI and gives the same outputs on every x86 CPU; ``arm``: the 8-bit scheme (Arm's dot-product kernels
accumulate in 32 bits; unmeasured here, no Arm CPU); ``tensorrt``: what TensorRT's ONNX parser imports."""


class QuantizationError(EdgeserError):
    """A variant failed its accuracy guard (nothing was written), or cannot be made from this bundle."""


@dataclass(frozen=True)
class QuantizeConfig:
    """How to make a variant.

    Attributes:
        precision: ``int8`` (static, calibrated), ``int8-dynamic`` or ``fp16``.
        method: Calibration method for ``int8``: ``auto`` (the default: :func:`edgeser.system.int8_method`), ``minmax``,
            ``entropy`` or ``percentile``.
        graphs: Which graphs to convert; the emotion head is tiny and stays FP32 by default.
        per_channel: Per-channel weight scales (static INT8).
        ua_budget: Largest UA drop accepted against the FP32 parent, in points (needs a validation set and
            an emotion head).
        min_cosine: Smallest mean cosine similarity accepted between a variant's and the parent's hidden
            states (speech) or token embeddings (text) on the calibration utterances: catches the silent
            garbage output that quantized transformer speech models are known for.
        min_label_agreement: Smallest share of the validation utterances whose label the variant leaves as the
            parent gave it. A UA difference on a few hundred utterances moves by a point or two with the sample;
            the labels a variant changes are counted on the same utterances, so this catches a variant that
            changes many labels while its UA happens to hold (a variant that changes 3% of them can move UA by
            at most about 3 points, and by less where, as usual, it changes uncertain ones).
        fallback_steps: How many times sensitive nodes may be moved back to float before giving up.
        fallback_fraction: Share of the quantized nodes moved back at each step.
        target: Which kernels the variant is for (:data:`TARGETS`): ``auto`` (the default) is this CPU's
            scheme, ``cpu-vnni``, ``cpu-avx2`` or ``arm``; ``tensorrt`` is Q/DQ with signed INT8 activations and
            weights, every zero point 0 (static ``int8`` only). :meth:`resolved` names the scheme ``auto`` stands
            for here.
    """

    precision: str
    method: str = "auto"
    graphs: tuple[str, ...] = ("speech", "text")
    per_channel: bool = True
    ua_budget: float = 1.0
    min_cosine: float = 0.9
    min_label_agreement: float = 0.97
    fallback_steps: int = 4
    fallback_fraction: float = 0.1
    target: str = "auto"

    def resolved(self) -> QuantizeConfig:
        """This config with ``target="auto"`` replaced by this CPU's scheme (``cpu`` is the name older versions
        recorded for the 8-bit scheme) and ``method="auto"`` by that target's calibration method."""
        config = replace(self, target=int8_target()) if self.target == "auto" else self
        if config.method == "auto":
            config = replace(config, method=int8_method(config.target))
        return config

    @property
    def reduce_range(self) -> bool:
        """7-bit weights (the ``cpu-avx2`` scheme)."""
        return self.target == "cpu-avx2"

    @property
    def float_first_convolution(self) -> bool:
        """Whether :func:`first_convolution` stays float32 (``int8`` with ``--method dynamic``; of a resolved
        config)."""
        return self.precision == "int8" and self.method == "dynamic"

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise InputError(f"target must be one of {TARGETS}, got {self.target!r}")
        if self.target == "tensorrt" and (self.precision == "int8-dynamic" or self.method == "dynamic"):
            raise InputError("dynamic INT8 makes MatMulInteger nodes, which TensorRT's ONNX parser does not import: "
                             "use --precision int8 --target tensorrt with --method minmax, entropy or percentile "
                             "(static, calibrated Q/DQ), or fp16")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.method not in METHODS:
            raise InputError(f"method must be one of {METHODS}, got {self.method!r}")
        if unknown := set(self.graphs) - {"speech", "text", "fusion"}:
            raise InputError(f"graphs must be among speech, text, fusion; got {sorted(unknown)}")
        if self.ua_budget < 0 or not 0 < self.fallback_fraction <= 1:
            raise InputError("ua_budget must be >= 0 and fallback_fraction in (0, 1]")
        if not 0 <= self.min_label_agreement <= 1:
            raise InputError(f"min_label_agreement must be in [0, 1], got {self.min_label_agreement}")


@dataclass
class GraphReport:
    graph: str
    quantized_nodes: int = 0
    kept_float: list[str] = field(default_factory=list)
    kept_because: str = ""
    front_end_float32: int = 0  # nodes of the signal-processing front end, always float32 (FRONT_END_SCOPES)
    first_conv_float32: str = ""  # under --method dynamic, the first convolution (first_convolution)
    agreement: dict[str, float] = field(default_factory=dict)
    bytes_parent: int = 0
    bytes_variant: int = 0


def quantize_graph(src: Path, dst: Path, config: QuantizeConfig, reader: readers.OrtReader | None,
                   exclude: Sequence[str] = ()) -> int:
    """Convert one ONNX graph; returns the number of nodes of the quantizable op types left quantized.

    Graph metadata (``edgeser.*`` keys, checked when a bundle loads) is carried over.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    config = config.resolved()
    graph = onnx.load(str(src), load_external_data=False)
    first = first_convolution(graph) if config.float_first_convolution else []
    exclude = list(dict.fromkeys([*front_end_nodes(graph), *first, *exclude]))
    if config.precision != "fp16":
        src = preprocess(src, dst.with_name(dst.stem + ".pre.onnx"))  # keeps node names (not their metadata)
    model = onnx.load(str(src))
    if config.precision == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        converted = convert_float_to_float16(model, keep_io_types=True, node_block_list=exclude)
        drop_round_trip_casts(converted)
        _copy_metadata(model, converted)
        onnx.save(converted, str(dst))
        return len(model.graph.node) - len(exclude)
    ops = STATIC_OPS if config.precision == "int8" else DYNAMIC_OPS
    candidates = [n.name for n in model.graph.node if n.op_type in ops]
    if config.precision == "int8-dynamic":
        with _quiet_root_logger():
            quantize_dynamic(str(src), str(dst), op_types_to_quantize=list(ops), per_channel=False,
                             reduce_range=config.reduce_range, weight_type=QuantType.QInt8,
                             nodes_to_exclude=list(exclude))
    else:
        if reader is None:
            raise QuantizationError("static INT8 needs a calibration set")
        reader.rewind()
        if config.method in HISTOGRAM_METHODS:
            reader = reader.equal_lengths()  # a reader already cut (quantize_bundle's) is used as it is
        trt = config.target == "tensorrt"
        dynamic = config.method == "dynamic"
        calibrated = [o for o in ops if o not in DYNAMIC_OPS] if dynamic else list(ops)
        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[DYNAMIC_CONV_METHOD if dynamic else config.method]
        static_out = dst.with_name(dst.stem + ".static.onnx") if dynamic else dst
        with _quiet_root_logger():
            if any(n.op_type in calibrated and n.name not in exclude for n in model.graph.node):
                quantize_static(str(src), str(static_out), reader, quant_format=QuantFormat.QDQ,
                                op_types_to_quantize=calibrated, per_channel=config.per_channel,
                                reduce_range=config.reduce_range,
                                activation_type=QuantType.QInt8 if trt else QuantType.QUInt8,
                                weight_type=QuantType.QInt8, calibrate_method=method, nodes_to_exclude=list(exclude),
                                # for TensorRT: biases stay float (its parser imports INT8 Q/DQ, not INT32 bias DQ)
                                extra_options={"WeightSymmetric": True, "ActivationSymmetric": trt,
                                               "QuantizeBias": not trt})
            else:  # every node of the calibrated types is kept in float
                onnx.save(model, str(static_out))
            if dynamic:
                quantize_dynamic(str(static_out), str(dst), op_types_to_quantize=list(DYNAMIC_OPS),
                                 per_channel=config.per_channel, reduce_range=config.reduce_range,
                                 weight_type=QuantType.QInt8, nodes_to_exclude=list(exclude))
    out = onnx.load(str(dst))
    _copy_metadata(model, out)
    if config.target == "tensorrt":
        check_tensorrt_qdq(out, dst)
    onnx.save(out, str(dst))
    return len([c for c in candidates if c not in set(exclude)])


def check_tensorrt_qdq(model: onnx.ModelProto, path: Path) -> None:
    """Raise :class:`QuantizationError` listing what TensorRT's ONNX parser would refuse."""
    problems = tensorrt_qdq_problems(model)
    if problems:
        raise QuantizationError(f"{path}: not importable by TensorRT's ONNX parser ({len(problems)} problems: "
                                f"{'; '.join(problems[:5])})")


def front_end_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes exported from a module named in :data:`FRONT_END_SCOPES`: the dynamo exporter
    records each node's module path as ``pkg.torch.onnx.name_scopes``, the TorchScript one names nodes
    ``/scope/Op``. A graph from neither has none."""
    names = []
    for node in model.graph.node:
        scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "")
        if any(f"'{scope}'" in scopes or node.name.startswith(f"/{scope}/") for scope in FRONT_END_SCOPES):
            names.append(node.name)
    return names


def first_convolution(model: onnx.ModelProto) -> list[str]:
    """The first convolution after the front end (Whisper's ``conv1``, reading the log-mel; wav2vec2's first, reading
    the audio), as a list of its name (empty if the graph has none). Under ``--method dynamic`` it stays float32:
    it is the cheaper of a Whisper graph's two (80 input channels against 512), and with it in float the default's
    variant keeps the guard's share of labels with every other node quantized
    (``benchmarks/results/int8_schemes.json``), where the convolutions' quantization is what moved them."""
    front = set(front_end_nodes(model))
    return next(([n.name] for n in model.graph.node if n.op_type == "Conv" and n.name not in front), [])


def drop_round_trip_casts(model: onnx.ModelProto) -> int:
    """Remove ``float32 -> float16 -> float32`` Cast pairs (what the float16 converter leaves between a float32
    graph input and a node kept in float32), so that node reads the input unrounded; returns how many."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    dtype = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.value_info]}
    to = {n.name: next(a.i for a in n.attribute if a.name == "to") for n in graph.node if n.op_type == "Cast"}
    rewired = 0
    for node in graph.node:
        if node.op_type != "Cast" or to[node.name] != onnx.TensorProto.FLOAT:
            continue
        first = producer.get(node.input[0])
        if (first is None or first.op_type != "Cast" or to[first.name] != onnx.TensorProto.FLOAT16
                or dtype.get(first.input[0]) != onnx.TensorProto.FLOAT):
            continue
        for consumer in graph.node:
            for i, name in enumerate(consumer.input):
                if name == node.output[0]:
                    consumer.input[i] = first.input[0]
                    rewired += 1
    if rewired:  # the pairs are now dead; drop them (a float16 Cast still read by float16 nodes stays)
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if n.op_type == "Cast" and all(o not in used for o in n.output)]
        while dead:
            for n in dead:
                graph.node.remove(n)
            used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
            dead = [n for n in graph.node if n.op_type == "Cast" and all(o not in used for o in n.output)]
    return rewired


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's quantizer warns on the root logger (e.g. about pre-processing, which is done here), and its
    histogram calibrators print their steps on standard output; the progress lines say what runs."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def preprocess(src: Path, dst: Path) -> Path:
    """ONNX Runtime's recommended step before quantization (shape inference, graph optimisation); returns
    ``dst``, or ``src`` unchanged where the graph's dynamic shapes defeat it."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if dst.is_file():
        return dst
    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    except Exception as e:
        log.warning("quantization pre-processing of %s failed (%s); quantizing the graph as exported", src.name, e)
        return src
    return dst


def _copy_metadata(src: onnx.ModelProto, dst: onnx.ModelProto) -> None:
    have = {p.key for p in dst.metadata_props}
    for p in src.metadata_props:
        if p.key not in have:
            dst.metadata_props.append(p)


def sensitivity(float_path: Path, qdq_path: Path, reader: readers.OrtReader, work: Path, max_feeds: int = 8
                ) -> list[tuple[str, float]]:
    """Quantized nodes of ``float_path``, most sensitive first: ``(node name, SQNR dB)``, from the
    signal-to-quantization-noise ratios of the node's quantized input and output activations, against their
    own quantization and against the float model (ONNX Runtime's ``qdq_loss_debug``)."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        compute_signal_to_quantization_noice_ratio,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    aug_float, aug_qdq = work / "float_aug.onnx", work / "qdq_aug.onnx"
    modify_model_output_intermediate_tensors(str(float_path), str(aug_float), op_types_for_saving=None)
    modify_model_output_intermediate_tensors(str(qdq_path), str(aug_qdq), op_types_for_saving=None)
    few = OrtReader(list(reader)[:max_feeds])  # every tensor of every feed is kept in memory
    float_acts = collect_activations(str(aug_float), few)
    few.rewind()
    qdq_acts = collect_activations(str(aug_qdq), few)
    errors = compute_activation_error(create_activation_matching(qdq_acts, float_acts))
    model = onnx.load(str(float_path))
    producer = {t: n.op_type for n in onnx.load(str(qdq_path), load_external_data=False).graph.node for t in n.output}
    for node in model.graph.node:
        if node.op_type not in DYNAMIC_OPS:
            continue
        # a dynamically quantized MatMul has no Q/DQ pair for ORT to match; its output keeps its name (now made by
        # another op), and its distance from the float model's is what there is to measure
        for t in node.output:
            if producer.get(t, node.op_type) != node.op_type and t in qdq_acts:
                errors[t] = {"xmodel_err": compute_signal_to_quantization_noice_ratio(float_acts[t], qdq_acts[t])}
    local: list[tuple[str, float]] = []  # noise that quantizing the node's own tensors adds
    cross: list[tuple[str, float]] = []  # distance of those tensors from the float model's
    for node in model.graph.node:
        if node.op_type not in STATIC_OPS:
            continue
        tensors = [t for t in (*node.input, *node.output) if t in errors]  # a quantized node's output is too
        for out, key in ((local, "qdq_err"), (cross, "xmodel_err")):
            values = [float(errors[t][key]) for t in tensors if key in errors[t] and np.isfinite(errors[t][key])]
            if values:
                out.append((node.name, min(values)))
    # SQNR is a ratio of powers: one huge channel hides, from the local measure, that the others were
    # flattened; the cross-model measure sees it downstream but also blames late nodes for early errors. The
    # two rankings are interleaved, so each step keeps the worst of both in float.
    ranked: list[tuple[str, float]] = []
    seen: set[str] = set()
    for pair in itertools.zip_longest(sorted(local, key=lambda x: x[1]), sorted(cross, key=lambda x: x[1])):
        for item in pair:
            if item is not None and item[0] not in seen:
                seen.add(item[0])
                ranked.append(item)
    return ranked


def quantize_bundle(bundle: str | Path, out: str | Path, config: QuantizeConfig, calibration: CalibrationSet | None,
                    validation: Dataset | None = None, *, overwrite: bool = False,
                    progress: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Write the variant of ``bundle`` described by ``config`` to ``out``; returns the guard's report.

    Raises:
        QuantizationError: The variant fails its guard even with the fallback (nothing is written), or
            static INT8 was asked without a calibration set.
    """
    config = config.resolved()
    parent = EmotionRecognizer.from_bundle(bundle, RuntimeOptions(verify_hashes=True))
    m = parent.bundle.manifest
    sections = {"speech": m.speech, "text": m.text, "fusion": m.fusion}
    graphs = [g for g in config.graphs if sections[g] is not None]
    if not graphs:
        raise QuantizationError(f"{bundle}: has none of the graphs {list(config.graphs)}")
    if config.precision == "int8" and calibration is None:
        raise QuantizationError("static INT8 needs a calibration set (--calibration)")
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgeser-quantize-") as tmp:
        work = Path(tmp)
        feeds: dict[str, readers.OrtReader] = {}
        if calibration is not None:
            for g in graphs:
                items = Ticker(progress, f"{g}: calibration feeds (encoder passes)", len(calibration))
                feeds[g] = readers.feeds_for(g, calibration, parent, items.over)
        calibrate = {g: f.equal_lengths() if config.precision == "int8" and config.method in HISTOGRAM_METHODS else f
                     for g, f in feeds.items()}  # what ORT's calibration reads, cut once for every fallback step
        parent_graphs = {g: onnx.load(str(parent.bundle.file(sections[g].graph)),  # type: ignore[union-attr]
                                      load_external_data=False) for g in graphs}
        reports = {g: GraphReport(g, front_end_float32=len(front_end_nodes(m)), first_conv_float32=next(
            iter(first_convolution(m)), "") if config.float_first_convolution else "")
                   for g, m in parent_graphs.items()}
        exclude: dict[str, list[str]] = {g: [] for g in graphs}
        converted: dict[str, list[str]] = {}  # the exclude list each graph was last converted with
        parent_out = {g: run_graph(parent.bundle.file(sections[g].graph), list(f))  # type: ignore[union-attr]
                      for g, f in feeds.items()}
        ranked: dict[str, list[tuple[str, float]]] = {}
        ua_parent = ua_variant = unseen = None
        speakers: UnseenSpeakers | None = None
        voicings: list[Voicing] | None = None  # silero's pass over each validation utterance, for a voiced head
        for step in range(config.fallback_steps + 1):
            for g in graphs:
                if converted.get(g) == exclude[g]:
                    continue  # nothing moved back to float in this graph: its variant stands
                src = parent.bundle.file(sections[g].graph)  # type: ignore[union-attr]
                dst = work / f"{g}.onnx"
                what = (f"{g}: {config.precision}" + (f" ({config.method})" if config.precision == "int8" else "")
                        + (f", {len(exclude[g])} nodes kept in float" if exclude[g] else ""))
                progress(what)
                reader, ticker = calibrate.get(g), Ticker(progress, what + ", conversion", 0)
                if reader is not None and config.precision == "int8":
                    ticker = Ticker(progress, what + ": calibration pass (then conversion)", len(reader))
                    reader.on_next = ticker
                reports[g].quantized_nodes = quantize_graph(src, dst, config, reader, exclude[g])
                section = sections[g]
                if config.precision == "int8" and section is not None and section.provenance.get("storage"):
                    # the parent stores its float16-exact weights as float16 (storage.py); the quantizer wrote the
                    # weights it left in float as float32: store them as the parent does (the same values)
                    fp16_weights(dst, dst, lossless_only=True)
                if reader is not None:
                    reader.on_next = None
                ticker.finish()
                converted[g] = reports[g].kept_float = list(exclude[g])
                reports[g].bytes_parent, reports[g].bytes_variant = src.stat().st_size, dst.stat().st_size
                if g in feeds:
                    reports[g].agreement = mean_output_agreement(parent_out[g], run_graph(dst, list(feeds[g])))
                    progress(f"{g}: agreement with FP32 {reports[g].agreement}")
            cosines_ok = all(v >= config.min_cosine for r in reports.values() for k, v in r.agreement.items()
                             if k.endswith("_cosine"))
            ua_short = labels_short = False  # which of the guard's limits the variant missed
            if validation is not None and m.fusion is not None:
                staged = work / f"variant-{step}"
                _write_variant(parent, staged, {g: work / f"{g}.onnx" for g in graphs}, config, calibration,
                               reports, guard={})
                blind = "speech" in graphs and blind_validation(m, validation)
                if not (blind and set(graphs) == {"speech"}):  # else both score near 100: it shows nothing
                    if ua_parent is None:
                        ua_parent, parent_labels = evaluate_ua(parent.bundle.path, validation, progress,
                                                               "validation: FP32 parent")
                    ua_variant, variant_labels = evaluate_ua(staged, validation, progress, "validation: variant")
                    ua_variant["label_agreement"] = float(np.mean(variant_labels == parent_labels))
                    ua_short = not 100 * (ua_parent["ua"] - ua_variant["ua"]) <= config.ua_budget
                    labels_short = not ua_variant["label_agreement"] >= config.min_label_agreement
                if blind:
                    if speakers is None:
                        progress("validation: the head has heard every validation speaker; training its recipe "
                                 "on the FP32 frames of some, to score the others")
                        if m.fusion.frame_mask == "voiced":
                            passes = Ticker(progress, "validation: silero-vad's pass", len(validation))
                            voicings = [voicing(load_audio(str(u.path))) for u in passes.over(validation.utterances)]
                        frames = speech_frames(parent.bundle.path, validation, m.fusion.layer, progress,
                                               "validation: FP32 parent's frames", voicings)
                        speakers = UnseenSpeakers(m, frames, validation.label_ids(),
                                                  np.array([u.group for u in validation.utterances]),
                                                  progress=progress)
                    unseen = speakers.check(speech_frames(staged, validation, m.fusion.layer, progress,
                                                          "validation: variant's frames", voicings))
                    progress(f"validation, unseen speakers: UA {100 * unseen['parent_ua']:.1f} with FP32 frames, "
                             f"{100 * unseen['variant_ua']:.1f} with the variant's; the variant keeps "
                             f"{100 * unseen['label_agreement']:.1f}% of the labels")
                    ua_short = ua_short or not unseen["drop_points"] <= config.ua_budget
                    labels_short = labels_short or not unseen["label_agreement"] >= config.min_label_agreement
            ua_ok = not (ua_short or labels_short)
            if (cosines_ok and ua_ok) or step == config.fallback_steps or config.precision != "int8":
                break  # passed, out of steps, or nothing to fall back on (dynamic INT8 and FP16 keep no ranking)
            reason = (f"UA dropped more than the budget or {100 * (1 - config.min_label_agreement):.0f}% of the "
                      "labels changed" if not ua_ok else
                      f"an output's cosine to FP32 fell below {config.min_cosine}")
            for g in graphs:  # move the most sensitive nodes of each graph back to float
                if g not in feeds:
                    continue
                if g not in ranked:
                    ticker = Ticker(progress, f"{g}: ranking quantized nodes by sensitivity (SQNR of their "
                                              "activations on 8 feeds), nodes ranked", 0)
                    progress(ticker.label)
                    pre = work / f"{g}.pre.onnx"
                    ranked[g] = sensitivity(pre if pre.is_file() else parent.bundle.file(sections[g].graph),  # type: ignore[union-attr]
                                            work / f"{g}.onnx", feeds[g], work)
                    ticker.finish(len(ranked[g]))
                k = max(1, round(config.fallback_fraction * len(ranked[g])))
                exclude[g] = [name for name, _ in ranked[g][: len(exclude[g]) + k]]
                reports[g].kept_because = reason + "; kept the lowest-SQNR nodes: " + ", ".join(
                    f"{name} ({db:.1f} dB)" for name, db in ranked[g][: len(exclude[g])][:8])
            if all(converted.get(g) == exclude[g] for g in graphs):
                break  # every ranked node is in float already: another step would score the same variant
        guard = {"ua_budget_points": config.ua_budget, "min_cosine": config.min_cosine,
                 "min_label_agreement": config.min_label_agreement,
                 "parent": ua_parent, "variant": ua_variant, "unseen_speakers": unseen,
                 "passed": bool(cosines_ok and ua_ok)}
        report = {"precision": config.precision, "config": asdict(config), "guard": guard,
                  "graphs": {g: asdict(r) for g, r in reports.items()},
                  "calibration": calibration.describe() if calibration is not None else None,
                  "seconds": round(time.perf_counter() - t_start, 1)}
        if not guard["passed"]:
            raise QuantizationError(
                f"the {config.precision} variant failed its guard "
                + (f"after {step} fallback steps " if config.precision == "int8" else
                   "(only static INT8 can fall back to float nodes) ")
                + f"(UA parent {_pct(ua_parent)} vs variant {_pct(ua_variant)}"
                + (f"; on unseen speakers, UA {100 * unseen['parent_ua']:.1f} vs "
                   f"{100 * unseen['variant_ua']:.1f}, {100 * unseen['label_agreement']:.1f}% of labels kept"
                   if unseen else "")
                + f", budget {config.ua_budget} points; "
                f"agreement {({g: r.agreement for g, r in reports.items()})}); nothing was written. Try "
                + refusal_advice(config, ua_short=ua_short, labels_short=labels_short))
        _write_variant(parent, Path(out), {g: work / f"{g}.onnx" for g in graphs}, config, calibration, reports,
                       guard=guard, overwrite=overwrite)
    return report


def refusal_advice(config: QuantizeConfig, *, ua_short: bool, labels_short: bool) -> str:
    """What to try after a refusal, by its cause: other methods or more calibration for any int8 variant, and the
    limit that refused it (a larger UA budget does not pass a variant that changed too many labels)."""
    if config.precision == "int8":
        tensorrt = config.target == "tensorrt"  # takes calibrated Q/DQ only
        untried = [m for m in METHODS[1:] if m != config.method and not (tensorrt and m == "dynamic")]
        tries = [f"--method {' or '.join(untried)}", "a larger calibration set"]
    else:
        tries = ["static INT8 (--precision int8)"]
    if ua_short:
        tries.append(f"a larger --ua-budget (now {config.ua_budget:g} points)")
    if labels_short:
        tries.append(f"a lower --min-label-agreement (now {config.min_label_agreement:g})")
    return ", ".join(tries[:-1]) + (", or " if len(tries) > 1 else "") + tries[-1]


def _pct(result: dict[str, Any] | None) -> str:
    return "n/a" if result is None else f"{100 * result['ua']:.1f}"


def _write_variant(parent: EmotionRecognizer, out: Path, converted: dict[str, Path], config: QuantizeConfig,
                   calibration: CalibrationSet | None, reports: dict[str, GraphReport], *, guard: dict[str, Any],
                   overwrite: bool = True) -> Manifest:
    m = parent.bundle.manifest
    recipe = {"precision": config.precision, "target": config.target, "reduce_range": config.reduce_range,
              "validated_on": {"cpu": cpu_model(), "cpu_flags": cpu_flags()},
              "method": config.method if config.precision == "int8" else None,
              "per_channel": config.per_channel if config.precision == "int8" else False,
              "calibration": calibration.describe() if calibration is not None else None,
              "parent": {"path": str(parent.bundle.path), "created": m.created}, "guard": guard}
    sections: dict[str, Any] = {"speech": m.speech, "text": m.text, "fusion": m.fusion}
    for g, report in reports.items():
        s = sections[g]
        sections[g] = replace(s, provenance={**s.provenance, "quantization": {
            **recipe, "quantized_nodes": report.quantized_nodes, "kept_float": report.kept_float,
            "kept_because": report.kept_because, "front_end_float32": report.front_end_float32,
            "agreement_with_parent": report.agreement}})
    with write_bundle(out, overwrite=overwrite) as writer:
        for name in m.files:
            graph = next((g for g in converted if sections[g].graph == name), None)
            shutil.copy2(converted[graph] if graph else parent.bundle.path / name, writer.path(name))
        return writer.finish(Manifest(edgeser_version=edgeser.__version__,
                                      created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                      labels=m.labels, files={}, speech=sections["speech"], text=sections["text"],
                                      fusion=sections["fusion"], speaker_fusion=m.speaker_fusion))
