"""The set-up commands of the README and docs/, each run on a fresh clone and timed.

The commands are read from the README itself, so what is timed is what a new user types: ``main`` and ``tests``
are the first two ``bash`` blocks of its Quickstart (the main job, then the tests); every other block whose first
line is ``# on a fresh clone: NAME`` is ``NAME`` (the corpus-job, Triton and TensorRT-target commands). Each runs
in its own fresh ``git clone`` of the current commit (with ``../shared`` linked beside it, as CI has it), one
after the other; pip's cache is whatever this machine has (warm when packages were installed before; say so
when quoting). ``--only NAME ...`` runs those and keeps the file's other entries (each records its commit).

    python -m edgeser_benchmarks.readme_commands --out benchmarks/results/readme_commands.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

from edgeser_benchmarks.provenance import write_result
from edgeser_benchmarks.suite import machine

ROOT = Path(__file__).resolve().parents[1]


def readme_commands(readme: Path) -> dict[str, str]:
    """``main`` and ``tests`` (the first two ``bash`` blocks after the README's ``## Quickstart``) and every block,
    in the README or the pages of ``docs/`` beside it, named by a ``# on a fresh clone: NAME`` first line."""
    text = readme.read_text()
    quick = re.findall(r"```bash\n(.*?)```", text[text.index("## Quickstart") :], re.S)
    pages = [text] + [p.read_text() for p in sorted((readme.parent / "docs").glob("*.md"))]
    named = {m.group(1): m.group(2).strip() for page in pages
             for m in re.finditer(r"```bash\n# on a fresh clone: (\S+)\n(.*?)```", page, re.S)}
    return {"main": quick[0].strip(), "tests": quick[1].strip(), **named}


def run(command: str, shared: Path | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="edgeser-readme-") as tmp:
        if shared is not None and shared.is_dir():
            (Path(tmp) / "shared").symlink_to(shared)
        clone = Path(tmp) / "main"
        subprocess.run(["git", "-c", "advice.detachedHead=false", "clone", "-q", str(ROOT), str(clone)], check=True)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True,
                                text=True, check=True).stdout.strip()
        t0 = time.perf_counter()
        done = subprocess.run(["bash", "-c", command], cwd=clone, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
    lines = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip() and "Location 'file:" not in ln]
    summary = next((ln.strip("= ") for ln in reversed(lines) if re.search(r"\d+ passed", ln)), None)
    return {"command": command, "commit": commit, "exit_status": done.returncode, "seconds": round(seconds, 1),
            "pytest_summary": summary, "resolver_errors": [ln for ln in lines if "ERROR" in ln and "pip" in ln.lower()],
            "last_lines": lines[-6:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--only", nargs="+", default=None, help="run only these commands (main, tests, or a block name)")
    args = ap.parse_args()
    commands = readme_commands(ROOT / "README.md")
    names = args.only or list(commands)
    unknown = sorted(set(names) - set(commands))
    if unknown:
        raise SystemExit(f"README.md has no commands named {unknown}; it has {sorted(commands)}")
    result = json.loads(args.out.read_text()) if args.only and args.out.is_file() else {}
    result.update({"protocol": (__doc__ or "").split("\n\n")[1].replace("\n", " "), "machine": machine(),
                   "command": f"python -m edgeser_benchmarks.readme_commands --out {args.out}"})
    for name in names:
        result[name] = run(commands[name], args.shared)
        r = result[name]
        print(f"{name}: exit {r['exit_status']} in {r['seconds']} s; {r['pytest_summary'] or ''}")
    write_result(args.out, result)


if __name__ == "__main__":
    main()
