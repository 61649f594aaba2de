"""Where a result came from: every result file written through :func:`write_result` carries the machine, its CPU
model and the instruction-set flags that decide inference speed and INT8 accuracy, library versions, the date, the
command line and the commit (with ``+dirty`` when the tree had uncommitted changes: result files under
``edgeser_benchmarks/results/`` aside, since a run writes them and the next run of a series would otherwise be
marked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgeser_benchmarks.suite import machine


def commit(root: Path | None = None) -> str:
    """The repository's HEAD, ``+dirty`` when the work tree differs from it outside ``edgeser_benchmarks/results/``
    (what earlier runs wrote is output, not code); ``unknown`` outside git."""
    cwd = root or Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)edgeser_benchmarks/results"], cwd=cwd, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def stamp() -> dict[str, Any]:
    """The provenance block of a result file."""
    return {"machine": machine(),
            "command": " ".join([*_program(), *sys.argv[1:]]),
            "commit": commit(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def _program() -> list[str]:
    """How the running program was started: ``python -m MODULE``, or the command's name (``edgeser``)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return ["python", "-m", spec.name] if spec is not None else [os.path.basename(sys.argv[0])]


def write_result(path: Path, data: dict[str, Any]) -> None:
    """``data`` with its :func:`stamp` as ``provenance``, as JSON at ``path`` (written to a temporary name, then
    renamed: never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"provenance": stamp(), **data}, indent=2) + "\n")
    tmp.replace(path)


__all__ = ["commit", "stamp", "write_result"]
