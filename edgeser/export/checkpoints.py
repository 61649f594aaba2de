"""Reading the torch files edgeser writes (checkpoints, emotion heads) without unpickling code.

``torch.load(..., weights_only=True)`` accepts tensors, containers and plain values only, so a crafted file
that would run code when unpickled is refused instead of run. What edgeser saves fits that: state dicts, label
lists, and the training history as a JSON string (numpy scalars in it would not load).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from edgeser.errors import DatasetError


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The dict saved at ``path``; :class:`DatasetError` (one line, the file named) for anything else."""
    try:
        data = torch.load(path, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise DatasetError(f"{path}: not a file edgeser wrote, refused without unpickling it ({type(e).__name__}: "
                           f"{first}); delete it (a checkpoint) or re-save it with edgeser") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: holds a {type(data).__name__}, not the dict edgeser writes; delete it")
    return data
