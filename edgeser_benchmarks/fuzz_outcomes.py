"""The fuzz suites run with more cases than CI runs, and what every case ended as.

Runs ``tests/test_fuzz.py`` (audio arrays, audio files, transcripts, service messages) and the bundle-manifest
suite of ``tests/test_bundle_integrity.py`` under pytest with ``--examples`` cases each (hypothesis, no example
database: every case is a new one), and writes per suite the cases tried and their outcomes: ``ok`` (a
prediction with finite probabilities), ``refused: <EdgeserError subclass>``, or for the service how the
connection ended (``end``, or the close code the protocol names). Any other exception, a NaN or a hang fails the
suite's test: the run then says which (``failed``) and exits non-zero.

    python -m edgeser_benchmarks.fuzz_outcomes --examples 300 --out benchmarks/results/fuzz_outcomes.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgeser_benchmarks.provenance import write_result
from edgeser_benchmarks.suite import machine

ROOT = Path(__file__).resolve().parents[1]
SUITES = {
    "audio arrays": "tests/test_fuzz.py::test_fuzzed_audio_arrays",
    "audio files": "tests/test_fuzz.py::test_fuzzed_audio_files",
    "transcripts": "tests/test_fuzz.py::test_fuzzed_transcripts",
    "service messages": "tests/test_fuzz.py::test_fuzzed_service_messages",
    "bundle manifests": "tests/test_bundle_integrity.py::test_fuzzed_manifests_load_and_predict_or_fail_clearly",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=300, help="cases per suite")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.examples < 1:
        raise SystemExit("--examples must be at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        env = {**os.environ, "EDGESER_FUZZ_EXAMPLES": str(args.examples), "EDGESER_FUZZ_REPORT": str(report)}
        t0 = time.perf_counter()
        limit = 60 + 10 * args.examples * len(SUITES)  # a case takes well under a second: more is a hang
        try:
            run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfs",
                                  *SUITES.values()], cwd=ROOT, env=env, capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            sys.exit(f"the fuzz suites did not finish in {limit} s: a hang (run them under pytest to see where)")
        seconds = time.perf_counter() - t0
        if not report.is_file():
            sys.exit(f"pytest wrote no report (exit {run.returncode}):\n{run.stdout[-3000:]}{run.stderr[-3000:]}")
        counts = json.loads(report.read_text())["outcomes"]
    failed = {line.split(" ")[1].split(" - ")[0] for line in run.stdout.splitlines() if line.startswith("FAILED ")}
    skipped = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED ")]
    suites = {}
    for name, test in SUITES.items():
        outcomes = counts.get(test, {})
        suites[name] = {"test": test, "cases": sum(outcomes.values()), "outcomes": outcomes,
                        "passed": test not in failed and bool(outcomes)}
        shown = ", ".join(f"{k} {v}" for k, v in outcomes.items())
        print(f"{name}: {sum(outcomes.values())} cases ({shown}){'' if suites[name]['passed'] else ' FAILED'}")
    result = {"protocol": (__doc__ or "").split("\n\n")[1], "machine": machine(), "examples_per_suite": args.examples,
              "seconds": round(seconds, 1), "pytest_exit_status": run.returncode, "suites": suites,
              "skipped": skipped, "summary": run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)
    print(f"wrote {args.out} ({result['summary']})")
    if run.returncode != 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
