"""The runtime never imports torch; torch-side commands say what to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_runtime_and_cli_import_without_torch() -> None:
    result = python(
        "import sys, edgeser, edgeser.cli, edgeser.recognizer, edgeser.audio, edgeser.text\n"
        "from click.testing import CliRunner\n"
        "CliRunner().invoke(edgeser.cli.main, ['inspect', '--help'])\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'onnx', 'edgeser_export', 'edgeser_calibration',\n"
        "                           'edgeser_benchmarks') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_export_without_torch_says_what_to_install() -> None:
    result = python(
        "import sys\n"
        "sys.modules['torch'] = None  # as if torch were not installed\n"
        "from click.testing import CliRunner\n"
        "from edgeser.cli import main\n"
        "r = CliRunner().invoke(main, ['export', '--speech-config', 'tiny', '--out', '/tmp/never'])\n"
        "print(r.exit_code); print(r.output)\n"
    )
    assert result.returncode == 0, result.stderr
    code, _, output = result.stdout.partition("\n")
    assert code == "1"
    assert 'pip install "edgeser[export]"' in output and "torch" in output


def test_the_public_api_names_the_types_its_results_use() -> None:
    """What ``predict``, ``segment`` and ``stream`` return or take is importable from ``edgeser`` itself."""
    import typing

    import edgeser
    from edgeser.results import Prediction
    from edgeser.streaming import StreamResult

    for name in ("Prediction", "Segment", "Segmentation", "SegmentOptions", "StreamOptions", "StreamResult",
                 "DatasetError", "NoSpeechError", "RuntimeOptions", "EmotionRecognizer"):
        assert name in edgeser.__all__ and hasattr(edgeser, name), name
    hints = typing.get_type_hints(Prediction)  # resolvable, and no longer Any
    assert hints["segmentation"] == edgeser.Segmentation | None
    assert typing.get_type_hints(StreamResult)["prediction"] == edgeser.Prediction | None
