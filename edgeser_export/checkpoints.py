"""Reading the torch files edgeser writes (checkpoints, emotion heads) without unpickling code.

``torch.load(..., weights_only=True)`` accepts tensors, containers and plain values only, so a crafted file
that would run code when unpickled is refused instead of run. What edgeser saves fits that: state dicts, label
lists, and the training history as a JSON string (numpy scalars in it would not load).
"""

from __future__ import annotations

import json
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


def save_epoch(path: Path, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer,
               history: list[dict[str, float]], epoch: int) -> None:
    """A training run's checkpoint after ``epoch``: each module's state under its name, the optimizer's, and the
    history as JSON, written whole (a temporary file, then renamed over ``path``) so that a stop never leaves half
    of one."""
    tmp = path.with_suffix(".tmp")
    torch.save({**{name: m.state_dict() for name, m in modules.items()}, "optimizer": optimizer.state_dict(),
                "history_json": json.dumps(history), "epoch": epoch}, tmp)
    tmp.replace(path)


def resume(path: Path, modules: dict[str, torch.nn.Module],
           optimizer: torch.optim.Optimizer) -> tuple[list[dict[str, float]], int]:
    """Where the run checkpointed at ``path`` (by :func:`save_epoch`) left off: the modules and the optimizer loaded
    in place, and (its history, the next epoch); ``([], 0)`` when there is no checkpoint yet."""
    if not path.is_file():
        return [], 0
    state = load_checkpoint(path)
    for name, m in modules.items():
        m.load_state_dict(state[name])
    optimizer.load_state_dict(state["optimizer"])
    return json.loads(state["history_json"]), state["epoch"] + 1
