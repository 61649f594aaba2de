"""Float16 storage of an ONNX graph's weights, float32 compute: half the file, the same speed.

Each large float32 initializer is stored as float16 and followed by a ``Cast`` to float32. ONNX Runtime folds
those casts into float32 constants when it opens the graph (constant folding, basic optimisation level), so it
runs exactly the float32 graph with weights rounded to float16; nothing about inputs, outputs or operators
changes, and TensorRT imports it the same way. The rounding is checked against the float32 graph by the caller.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeser.errors import InputError

if TYPE_CHECKING:
    from edgeser.model.bundle import SpeechSection

MIN_ELEMENTS = 1024
"""Smaller initializers (biases, norms, shapes) stay float32: they cost nothing and may need the range."""


def fp16_weights(src: Path, dst: Path, min_elements: int = MIN_ELEMENTS, lossless_only: bool = False
                 ) -> dict[str, Any]:
    """Write ``src`` to ``dst`` with float16 storage of its float32 initializers of ``min_elements`` or more.

    Args:
        lossless_only: Convert only initializers whose every value is exactly a float16 (weights that came from
            a float16 checkpoint, such as the Whisper packages): the graph then computes exactly what ``src``
            does. Others (the DFT basis of a log-mel front end, say) stay float32.

    Returns:
        What changed: the count of converted initializers, their elements, and the largest absolute rounding
        error of any weight.

    Raises:
        ValueError: A weight is outside float16's range (it would become infinite).
    """
    model = onnx.load(str(src))
    graph = model.graph
    casts, kept = [], []
    converted, elements, worst = 0, 0, 0.0
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < min_elements:
            kept.append(init)
            continue
        array = numpy_helper.to_array(init)
        if np.abs(array).max(initial=0.0) > np.finfo(np.float16).max:
            raise InputError(f"{src.name}: weight {init.name!r} exceeds float16's range; keep this graph in float32")
        half = array.astype(np.float16)
        if lossless_only and not np.array_equal(half.astype(np.float32), array):
            kept.append(init)
            continue
        worst = max(worst, float(np.abs(half.astype(np.float32) - array).max(initial=0.0)))
        stored = f"{init.name}__fp16"
        kept.append(numpy_helper.from_array(half, name=stored))
        casts.append(helper.make_node("Cast", [stored], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}__to_fp32"))
        converted += 1
        elements += half.size
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend([*casts, *nodes])  # the casts come first, so the graph stays topologically sorted
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    rule = "exactly representable " if lossless_only else ""
    return {"storage": f"float16 weights ({rule}initializers of >= {min_elements} elements), float32 compute",
            "initializers": converted, "elements": elements, "max_abs_weight_rounding": worst}


def speech_fp16(speech: SpeechSection, src: Path, dst: Path) -> SpeechSection:
    """Copy ``speech``'s graph from bundle folder ``src`` to ``dst`` with its float16-exact weights stored as float16
    (:func:`fp16_weights` with ``lossless_only``: bit-identical outputs, about half the file), unless they already
    are; returns the section with that storage recorded in its provenance."""
    if speech.provenance.get("storage"):
        shutil.copy2(src / speech.graph, dst / speech.graph)
        return speech
    storage = fp16_weights(src / speech.graph, dst / speech.graph, lossless_only=True)
    return replace(speech, provenance={**speech.provenance, "storage": storage})
