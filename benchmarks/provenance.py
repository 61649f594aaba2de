"""Where a result came from: every result file written through :func:`write_result` carries the machine, its CPU
model and the instruction-set flags that decide inference speed and INT8 accuracy, library versions, the date, the
command line and the commit (with ``+dirty`` when the tree had uncommitted changes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgeser.benchmarks.suite import machine

CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
"""The instruction sets that matter for inference here: wide float SIMD, and 8-bit dot products (VNNI, AMX, Arm)."""


def cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """The :data:`CPU_FLAGS` this CPU has (from ``/proc/cpuinfo``; empty where it cannot be read)."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.is_file() else ""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags |= set(value.split())
    return [f for f in CPU_FLAGS if f in flags]


def commit(root: Path | None = None) -> str:
    """The repository's HEAD, ``+dirty`` when the work tree differs from it; ``unknown`` outside git."""
    cwd = root or Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def stamp() -> dict[str, Any]:
    """The provenance block of a result file."""
    return {"machine": {**machine(), "cpu_flags": cpu_flags()},
            "command": " ".join(["python", "-m", _module(), *sys.argv[1:]]),
            "commit": commit(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def _module() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return spec.name if spec is not None else os.path.basename(sys.argv[0])


def write_result(path: Path, data: dict[str, Any]) -> None:
    """``data`` with its :func:`stamp` as ``provenance``, as JSON at ``path`` (written to a temporary name, then
    renamed: never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"provenance": stamp(), **data}, indent=2) + "\n")
    tmp.replace(path)


__all__ = ["CPU_FLAGS", "commit", "cpu_flags", "stamp", "write_result"]
