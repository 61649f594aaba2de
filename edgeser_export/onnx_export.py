"""torch module → ONNX file, with dynamic axes taken from the graph spec and metadata stamped in."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from edgeser.errors import BackendError, InputError
from edgeser.model.specs import GraphSpec

EXPORTERS = ("dynamo", "torchscript")
DEFAULT_OPSET = {"dynamo": 18, "torchscript": 17}


def export_onnx(module: torch.nn.Module, spec: GraphSpec, example: Mapping[str, np.ndarray], path: Path, *,
                exporter: str = "dynamo", opset: int | None = None, dim_min: Mapping[str, int] | None = None,
                metadata: Mapping[str, str] | None = None) -> int:
    """Export ``module`` with inputs named and ordered as ``spec.inputs``; return the opset used.

    Args:
        example: Trace inputs. Give every dynamic axis a size above 1 so no axis is specialised.
        dim_min: Smallest size of named dynamic axes (dynamo exporter), e.g. ``{"samples": 400}``.
        metadata: Written into the ONNX model's ``metadata_props``.
    """
    if exporter not in EXPORTERS:
        raise InputError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    opset = opset or DEFAULT_OPSET[exporter]
    args = tuple(torch.from_numpy(example[t.name]) for t in spec.inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings from transformers are expected and harmless here
        if exporter == "torchscript":
            torch.onnx.export(module, args, str(path), input_names=list(spec.input_names),
                              output_names=list(spec.output_names), dynamic_axes=spec.dynamic_axes(),
                              opset_version=opset, dynamo=False, do_constant_folding=True)
        else:
            dims: dict[str, Any] = {}
            for axes in spec.dynamic_axes().values():
                for axis_name in axes.values():
                    dims.setdefault(axis_name, torch.export.Dim(axis_name, min=(dim_min or {}).get(axis_name, 1)))
            dynamic_shapes: Any = tuple({axis: dims[n] for axis, n in spec.dynamic_axes()[t.name].items()}
                                        for t in spec.inputs)
            if any(p.kind is inspect.Parameter.VAR_POSITIONAL
                   for p in inspect.signature(module.forward).parameters.values()):
                dynamic_shapes = (dynamic_shapes,)  # forward(*inputs): torch.export sees one tuple argument
            program = torch.onnx.export(module, args, input_names=list(spec.input_names),
                                        output_names=list(spec.output_names), dynamic_shapes=dynamic_shapes,
                                        opset_version=opset, dynamo=True, verbose=False)
            if program is None:
                raise BackendError("torch.onnx.export(dynamo=True) returned no program")
            program.save(str(path))
    model = onnx.load(str(path))
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return opset
