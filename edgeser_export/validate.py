"""Check an exported graph against its torch module on shapes other than the trace shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from edgeser.errors import ParityError
from edgeser.model.specs import GraphSpec


def check_parity(module: torch.nn.Module, path: Path, spec: GraphSpec, cases: Sequence[Mapping[str, np.ndarray]],
                 tolerance: float) -> dict[str, Any]:
    """Run torch and ONNX Runtime on each case; raise :class:`ParityError` if any output differs by more
    than ``tolerance`` (max absolute difference).

    Returns:
        ``{"tolerance", "max_abs_diff": {output: worst}, "cases": [{"shapes", "max_abs_diff"}]}``.
    """
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    report: dict[str, Any] = {"tolerance": tolerance, "cases": []}
    worst = dict.fromkeys(spec.output_names, 0.0)
    for feeds in cases:
        with torch.no_grad():
            ref = module(*(torch.from_numpy(feeds[t.name]) for t in spec.inputs))
        ref = ref if isinstance(ref, tuple) else (ref,)
        got = session.run(list(spec.output_names), {k: feeds[k] for k in spec.input_names})
        diffs = {}
        for name, r, g in zip(spec.output_names, ref, got, strict=True):
            if tuple(r.shape) != g.shape:
                raise ParityError(f"{path.name}: output {name} has shape {g.shape} in ONNX, {tuple(r.shape)} in torch")
            diffs[name] = float(np.abs(r.numpy() - g).max())
            worst[name] = max(worst[name], diffs[name])
        report["cases"].append({"shapes": {k: list(v.shape) for k, v in feeds.items()}, "max_abs_diff": diffs})
    report["max_abs_diff"] = worst
    failed = {k: v for k, v in worst.items() if not v <= tolerance}
    if failed:
        raise ParityError(f"{path.name}: ONNX differs from torch by {failed} (max abs), above the tolerance "
                          f"{tolerance}; try the other exporter (--exporter) or report the model")
    return report
