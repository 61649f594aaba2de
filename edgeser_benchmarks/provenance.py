"""Where a result came from: every result file written through :func:`write_result` carries the machine, its CPU
model and the instruction-set flags that decide inference speed and INT8 accuracy, library versions, the date, the
command line and the commit (with ``+dirty`` when the tree had uncommitted changes: result files under
``benchmarks/results/`` aside, since a run writes them and the next run of a series would otherwise be
marked)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgeser_benchmarks.suite import flags_text, machine


def commit(root: Path | None = None) -> str:
    """The repository's HEAD, ``+dirty`` when the work tree differs from it outside ``benchmarks/results/``
    (what earlier runs wrote is output, not code); ``unknown`` outside git."""
    cwd = root or Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)benchmarks/results"], cwd=cwd, capture_output=True, text=True,
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


def in_todays_layout(command: str) -> str:
    """A recorded command under today's module names. Until 2026-12-08 the three packages above the runtime were
    installed as edgeser.export / edgeser.calibration / edgeser.benchmarks; result files written then record their
    commands so (what ran at their commit), and the docs show them as they run now. Result files are kept in
    benchmarks/results/, as they were then, so the paths in those commands stand."""
    return re.sub(r"\bedgeser\.(export|calibration|benchmarks)\b", r"edgeser_\1", command)


def stamp_text(r: dict[str, Any], name: str) -> str:
    """Where result file ``name``'s figures were measured, for the docs (from its provenance block)."""
    p = r["provenance"]
    m = p["machine"]
    command, renamed = in_todays_layout(p["command"]), ""
    here = f"benchmarks/results/{name}"
    written = re.search(r"--out (\S+)", command)
    if written and written.group(1) != here:  # the file was renamed after the run (a candidate became the default)
        command = command.replace(f"--out {written.group(1)}", f"--out {here}")
        renamed = f" (which wrote it under another name, since renamed to {name})"
    return (f"({m['cpu']}, {m['cores']} cores, {flags_text(m)}; commit {p['commit']}, {p['date'][:10]}; "
            f"`{command}`{renamed}; `{here}`)")
