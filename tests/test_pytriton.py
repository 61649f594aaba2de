"""edgeser serve --triton on PyTriton's real Triton server: real audio through tritonclient gives the runtime's
prediction. PyTriton runs only from a venv of the system Python (see edgeser/pytriton_serve.py), so this skips
elsewhere; .ci/run makes such a venv and runs edgeser.benchmarks.pytriton_check there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def test_real_audio_through_triton_equals_the_runtime(tmp_path: Path) -> None:
    pytest.importorskip("pytriton", reason="needs nvidia-pytriton, in a venv made from the system Python "
                                           '(pip install ".[cpu,pytriton]"; see edgeser/pytriton_serve.py)')
    pytest.importorskip("tritonclient.http")
    out = tmp_path / "check.json"
    done = subprocess.run([sys.executable, "-m", "edgeser.benchmarks.pytriton_check", "--port", "8140", "--out",
                           str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    if result["started_s"] is None:
        pytest.skip(f"PyTriton's server did not start here: {result['server_log_tail']}")
    assert result["all_equal_labels"] and result["max_abs_difference"] < 1e-5
    assert "silent" in result["silence_error"] and result["exit_status_on_sigterm"] == 0
