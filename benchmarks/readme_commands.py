"""The README's two set-up commands, each run on a fresh clone and timed.

The commands are read from the README itself (the first two ``bash`` blocks of its Quickstart: the main job, then
the tests), so what is timed is what a new user types. Each runs in its own fresh ``git clone`` of the current
commit (with ``../shared`` linked beside it, as CI has it), one after the other; pip's cache is whatever this
machine has (warm when packages were installed before; say so when quoting).

    python -m edgeser.benchmarks.readme_commands --out benchmarks/results/readme_commands.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

from edgeser.benchmarks.suite import machine

ROOT = Path(__file__).resolve().parents[1]


def readme_commands(readme: Path) -> list[str]:
    """The first two ``bash`` blocks after ``## Quickstart``."""
    text = readme.read_text()
    quick = text[text.index("## Quickstart") :]
    blocks = re.findall(r"```bash\n(.*?)```", quick, re.S)
    return [b.strip() for b in blocks[:2]]


def run(command: str, shared: Path | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="edgeser-readme-") as tmp:
        if shared is not None and shared.is_dir():
            (Path(tmp) / "shared").symlink_to(shared)
        clone = Path(tmp) / "main"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
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
    args = ap.parse_args()
    main_cmd, test_cmd = readme_commands(ROOT / "README.md")
    result = {"protocol": (__doc__ or "").split("\n\n")[1].replace("\n", " "), "machine": machine(),
              "main": run(main_cmd, args.shared), "tests": run(test_cmd, args.shared),
              "command": f"python -m edgeser.benchmarks.readme_commands --out {args.out}"}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for k in ("main", "tests"):
        r = result[k]
        print(f"{k}: exit {r['exit_status']} in {r['seconds']} s; {r['pytest_summary'] or ''}")  # type: ignore[index]


if __name__ == "__main__":
    main()
