"""The edgeser command: inspect, encode, export, and their failure modes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from edgeser.cli import main
from tests.conftest import SAMPLE


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def test_inspect_table_and_json(tiny_bundle: Path) -> None:
    code, text = run("inspect", tiny_bundle)
    assert code == 0, text
    assert "blank '<pad>' (id 0)" in text and "sha256 ok" in text and "max abs diff" in text
    code, text = run("inspect", tiny_bundle, "--json")
    data = json.loads(text)
    assert code == 0 and data["ok"] is True
    assert data["path"] == str(tiny_bundle.resolve())
    assert data["schema_version"] == 1 and data["speech"]["ctc"]["blank_id"] == 0
    assert {c["name"] for c in data["checks"]} == {"speech.onnx", "text.onnx", "tokenizer.json", "graphs", "signature"}
    assert data["digest"].startswith("sha256:") and "unsigned" in json.dumps(data["checks"])


def test_inspect_system_names_the_cpu_its_flags_and_the_int8_scheme() -> None:
    from edgeser import system

    code, text = run("inspect", "--system", "--json")
    data = json.loads(text)
    assert code == 0 and data["cpu"] == system.cpu_model() and data["cpu_flags"] == system.cpu_flags()
    assert data["int8_target"] == system.int8_target()
    code, text = run("inspect", "--system")
    assert code == 0 and "cpu_flags" in text and f"makes {system.int8_target()} variants here" in text
    assert f"activation ranges: {system.int8_method(system.int8_target())}" in " ".join(text.split())
    code, text = run("inspect")
    assert code == 2 and "--system" in text


def test_inspect_fails_on_tampered_bundle(tiny_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    with open(copy / "text.onnx", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    code, text = run("inspect", copy, "--json")
    data = json.loads(text)
    assert code == 1 and data["ok"] is False
    assert [c["name"] for c in data["checks"] if not c["ok"]] == ["text.onnx"]
    code, text = run("inspect", tmp_path / "missing")
    assert code == 1 and "no bundle folder" in text


def test_encode_json(tiny_bundle: Path) -> None:
    code, text = run("encode", SAMPLE, SAMPLE, "--bundle", tiny_bundle, "--text", "Kids are talking by the door.",
                     "--json")
    assert code == 0, text
    data = json.loads(text)
    frames = data["speech"]["num_frames"][0]
    assert data["speech"]["hidden_states_shape"] == [2, 3, frames, 32]
    assert data["speech"]["log_probs_shape"] == [2, frames, 32]
    assert data["text"]["tokens"][0] == ["[CLS]", "kids", "are", "talking", "by", "the", "door", ".", "[SEP]"]
    assert data["speech"]["timings"]["speech_encoder_s"] > 0


def test_encode_reports_bad_audio_without_traceback(tiny_bundle: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    code, text = run("encode", bad, "--bundle", tiny_bundle)
    assert code == 1 and "cannot decode audio" in text and "Traceback" not in text


def test_export_usage_errors(tmp_path: Path, tiny_bundle: Path) -> None:
    code, text = run("export", "--out", tmp_path / "b")
    assert code == 2 and "nothing to export" in text
    code, text = run("export", "--speech-config", "tiny", "--speech", tmp_path, "--out", tmp_path / "b")
    assert code == 2 and "not both" in text
    code, text = run("export", "--speech-config", "tiny", "--out", tiny_bundle)
    assert code == 1 and "already exists" in text


def test_export_then_inspect(tmp_path: Path, tiny_text_dir: Path) -> None:
    code, text = run("export", "--speech-config", "tiny", "--text", tiny_text_dir, "--out", tmp_path / "b",
                     "--exporter", "torchscript", "--layers", "all")
    assert code == 0, text
    code, text = run("inspect", tmp_path / "b", "--json")
    assert code == 0 and json.loads(text)["speech"]["exposed_layers"] == [0, 1, 2]


def test_messages_and_paths_print_as_written_brackets_and_all(monkeypatch: object, tmp_path: Path) -> None:
    """Square brackets in a message or a path are printed, not read as rich markup (issue 25, item 8: `pip install
    "edgeser[align]"` came out as `pip install "edgeser"`)."""
    import pytest

    from edgeser.errors import AlignmentError
    from edgeser.recognizer import EmotionRecognizer

    def refuse(self: object, *args: object, **kwargs: object) -> None:
        raise AlignmentError('segments need the aligner: pip install "edgeser[align]"')

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setattr(EmotionRecognizer, "predict", refuse)
    odd = tmp_path / "[take 1].wav"
    shutil.copy(SAMPLE, odd)
    code, text = run("predict", odd, "--segments")
    assert code == 1
    assert 'pip install "edgeser[align]"' in text and "[take 1].wav" in text


def _pcm(rate: int, channels: int) -> bytes:
    import numpy as np
    import soundfile as sf
    import soxr

    wave, sr = sf.read(SAMPLE, dtype="float32")
    wave = np.concatenate([wave, np.zeros(sr, np.float32)])
    x = soxr.resample(wave, sr, rate) if rate != sr else wave
    return (np.repeat(x[:, None], channels, axis=1) * 32767).astype("<i2").tobytes()


def test_listen_says_what_it_found_and_warns_of_a_wrong_format() -> None:
    """Piped 48 kHz stereo read as 16 kHz mono finds nothing: listen says so and points at --rate/--channels; the
    right options find the utterance, and the count is said (issue 25, item 4: it printed nothing and exited 0)."""
    wrong = CliRunner().invoke(main, ["listen", "--stdin"], input=_pcm(48000, 2))
    assert wrong.exit_code == 0, wrong.output
    assert "0 utterances in 19.1 s of audio" in wrong.output and "--rate and --channels" in wrong.output
    right = CliRunner().invoke(main, ["listen", "--stdin", "--rate", "48000", "--channels", "2"],
                               input=_pcm(48000, 2))
    assert right.exit_code == 0 and "1 utterance in 3.2 s of audio" in right.output
    assert "warning" not in right.output


def test_listen_refuses_impossible_formats_in_one_line() -> None:
    """--channels 0 was a ZeroDivisionError, negative values tracebacks, --rate 10000000 a silent exit (item 17)."""
    for option, value in [("--channels", "0"), ("--channels", "-1"), ("--rate", "0"), ("--rate", "-16000"),
                          ("--rate", "10000000")]:
        result = CliRunner().invoke(main, ["listen", "--stdin", option, value], input=b"")
        assert result.exit_code == 2 and "is not in the range" in result.output, (option, value, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_listen_reads_a_file_in_blocks(tmp_path: Path, monkeypatch: object) -> None:
    """listen --file never decodes the whole file at once (item 16: a 1 GiB file took 4.2 GB)."""
    import pytest
    import soundfile as sf

    assert isinstance(monkeypatch, pytest.MonkeyPatch)

    def no_whole_reads(*args: object, **kwargs: object) -> None:
        raise AssertionError("the whole file was decoded")

    monkeypatch.setattr(sf, "read", no_whole_reads)
    code, text = run("listen", "--file", SAMPLE)
    assert code == 0 and "1 utterance in 2.2 s of audio" in text


def test_every_command_that_runs_a_bundle_takes_backend_and_threads() -> None:
    """predict, listen, serve and enroll choose threads and the backend as bench does, so engines built with
    `edgeser engines` can be used from the CLI (issue 25, item 18); a backend this machine lacks is one line."""
    from edgeser.options import BACKENDS

    for command in ("predict", "listen", "serve", "enroll", "encode", "batch"):
        code, text = run(command, "--help")
        assert code == 0 and "--threads" in text, command
        if command in ("predict", "listen", "serve", "enroll"):
            assert "--backend" in text and all(b in text for b in BACKENDS), command
    code, text = run("predict", SAMPLE, "--threads", "1", "--json")
    assert code == 0 and json.loads(text.splitlines()[-1])["label"]
    code, text = run("predict", SAMPLE, "--backend", "cuda")
    assert code == 1 and "onnxruntime-gpu" in text and "Traceback" not in text


def test_the_python_examples_of_the_readme_and_the_api_page_run_with_the_shipped_default(monkeypatch: object) -> None:
    """The README's Python blocks, run in order as a user pastes them, from the repository root, and the Python API
    page's (issue 25, item 9: the section used bundles/demo, embed_text and log_probs, which fail or return None with
    the shipped default)."""
    import contextlib
    import io
    import re

    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    for page in ("README.md", "docs/python-api.md"):
        blocks = re.findall(r"```python\n(.*?)```", (root / page).read_text(encoding="utf-8"), re.DOTALL)
        assert blocks, page
        printed = io.StringIO()
        namespace: dict[str, object] = {}
        with contextlib.redirect_stdout(printed):
            for k, block in enumerate(blocks):
                exec(compile(block, f"{page} (Python block {k + 1})", "exec"), namespace)
        lines = printed.getvalue().splitlines()
        assert lines[0].split()[0] in ("neutral", "happy", "angry", "sad"), (page, lines)
        assert re.match(r"0\.\d\d-\d\.\d\d s", lines[1]), (page, lines)


def test_predict_names_files_by_what_differs_and_times_decoded_segments(tmp_path: Path) -> None:
    """Files deep in a long folder are named by the part of their path that differs, never cut to a shared prefix;
    --segments shows each word's times and says that decoded "words" are IPA phones (issue 25, item 19)."""
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "holdout" / "ravdess" / "audio"
    deep.mkdir(parents=True)
    for name in ("first.wav", "second.wav"):
        shutil.copy(SAMPLE, deep / name)
    result = CliRunner().invoke(main, ["predict", str(deep / "first.wav"), str(deep / "second.wav"), "--segments"],
                                terminal_width=100)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("│ first.wav ") for line in lines) and any("│ second.wav " in line for line in lines)
    assert "IPA phones, decoded" in result.output and "start s" in result.output
    assert "0.01" in result.output  # the first word's start


def test_enroll_warns_with_the_measured_threshold_and_names_the_layer_as_its_json(tmp_path: Path) -> None:
    """Issue 25, item 21: 2 s of speech got only "more audio gives a steadier profile" though profiles from 5 and
    10 s were measured worse than none; the message said "layer 2" where the JSON says "layer": 0."""
    out = tmp_path / "me.json"
    code, text = run("enroll", SAMPLE, "--out", out)
    assert code == 0
    assert "profiles from under 30 s scored below no profile" in text and "enrolment.json" in text
    layer = json.loads(out.read_text())["layer"]
    assert f"the speech graph's output {layer}, encoder block 3" in text and "1 recording " in text
    code, text = run("enroll", SAMPLE, "--out", tmp_path / "site.json", "--site")
    assert code == 0 and "site profiles were measured from 60 s up" in text
