"""edgeser serve --triton on PyTriton's real Triton server: real audio through tritonclient gives the runtime's
prediction. PyTriton runs only from a venv of the system Python (see edgeser/serving/pytriton.py), so this skips
elsewhere; .ci/run makes such a venv and runs these tests there. The written Triton repository runs on the same
server (tests/integration/triton_repo_check.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA

pytestmark = pytest.mark.integration
INTEGRATION = Path(__file__).resolve().parent / "integration"


def run_check(module: str, port: int, tmp_path: Path) -> dict:  # type: ignore[type-arg]
    """``python tests/integration/<module>.py`` against PyTriton's server; its result file."""
    pytest.importorskip("pytriton", reason="needs nvidia-pytriton, in a venv made from the system Python "
                                           '(pip install ".[cpu,pytriton]"; see edgeser/serving/pytriton.py)')
    pytest.importorskip("tritonclient.http")
    out = tmp_path / "check.json"
    done = subprocess.run([sys.executable, str(INTEGRATION / f"{module}.py"), "--port", str(port), "--data",
                           str(DATA), "--out", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict = json.loads(out.read_text())  # type: ignore[type-arg]
    return result


def test_real_audio_through_triton_equals_the_runtime(tmp_path: Path) -> None:
    result = run_check("pytriton_check", 8140, tmp_path)
    if result["started_s"] is None:
        pytest.skip(f"PyTriton's server did not start here: {result['server_log_tail']}")
    assert result["all_equal_labels"] and result["max_abs_difference"] < 1e-5
    assert "silent" in result["silence_error"] and result["exit_status_on_sigterm"] == 0


def test_the_written_repository_on_a_real_triton_server(tmp_path: Path) -> None:
    """`edgeser triton`'s repository under PyTriton's tritonserver: as written, the pipeline model loads and the
    ONNX Runtime graph models are refused for want of that backend (the reason recorded); with Python-backend
    stand-ins running the same model.onnx files, real audio gives the runtime's prediction."""
    result = run_check("triton_repo_check", 8150, tmp_path)
    if result["with_stand_ins"]["ready_s"] is None:
        pytest.skip(f"Triton's server did not start here: {result['server_log_tail']}")
    written = result["as_written"]["models"]
    assert written["edgeser"]["state"] == "READY"
    assert all(written[g]["state"] == "UNAVAILABLE" and "onnxruntime" in written[g]["reason"] for g in result["graphs"])
    assert all(m["state"] == "READY" for m in result["with_stand_ins"]["models"].values())
    assert result["all_equal_labels"] and result["max_abs_difference"] < 1e-5
    assert len(result["answers_four_at_once"]) == len(result["answers"])
    assert "silent" in result["silence_error"] and result["exit_status_on_sigterm"] == 0
