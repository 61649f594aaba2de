"""The frames-only fast path: a head that reads only frames runs no aligner and no decoder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SAMPLE

from edgeser import EmotionRecognizer
from edgeser.cli import main
from edgeser.errors import BundleError

SEGMENTERS = ("hama", "pyctcdecode", "pygtrie")


@pytest.fixture
def no_segmenters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every import of hama and pyctcdecode fail, as if they were not installed."""
    for name in list(sys.modules):
        if name.split(".")[0] in SEGMENTERS:
            monkeypatch.delitem(sys.modules, name)
    for name in SEGMENTERS:
        monkeypatch.setitem(sys.modules, name, None)  # `import hama` now raises ImportError


def test_the_shipped_head_reads_only_frames() -> None:
    rec = EmotionRecognizer.from_bundle("default")
    fusion = rec.bundle.manifest.fusion
    assert fusion is not None and fusion.levels == ("frame",) and not fusion.uses_text
    assert not rec._needs_segments()


def test_predict_needs_neither_hama_nor_pyctcdecode(no_segmenters: None) -> None:
    with pytest.raises(ImportError):
        __import__("hama")
    rec = EmotionRecognizer.from_bundle("default")
    p = rec.predict(SAMPLE)
    assert p.segmentation is None and p.transcript is None
    assert p.timings.segmentation_s is None and p.timings.text_encoder_s is None
    assert abs(sum(p.probabilities.values()) - 1) < 1e-4
    d = p.to_dict()
    assert "words" not in d and d["label"] == p.label
    rec.warm_up()  # the warm-up takes the same path


def test_segments_on_request_do_not_change_the_scores() -> None:
    pytest.importorskip("hama")
    rec = EmotionRecognizer.from_bundle("default")
    fast, full = rec.predict(SAMPLE), rec.predict(SAMPLE, segments=True)
    assert full.segmentation is not None and len(full.segmentation.words) > 0
    assert fast.probabilities == full.probabilities
    assert {"words", "syllables", "phones"} <= set(full.to_dict())


def test_cli_predict_without_segmenters(no_segmenters: None) -> None:
    result = CliRunner().invoke(main, ["predict", str(SAMPLE), "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.output.strip().splitlines()[-1])
    assert row["transcript"] is None and "words" not in row
    assert set(row["probabilities"]) == {"neutral", "happy", "angry", "sad"}


def test_streaming_runs_without_segmenters(no_segmenters: None, tmp_path: Path) -> None:
    import soundfile as sf

    from edgeser.streaming import StreamOptions, file_source

    rec = EmotionRecognizer.from_bundle("default")
    wave = rec.load_audio(SAMPLE)
    silence = np.zeros(16000, np.float32)
    sf.write(tmp_path / "two.wav", np.concatenate([silence, wave, silence, wave, silence]), 16000)
    results = list(rec.stream(file_source(tmp_path / "two.wav"), StreamOptions()))
    labelled = [r for r in results if r.prediction is not None]
    assert len(labelled) == 2, [r.error for r in results]
    assert all(r.prediction.segmentation is None for r in labelled)


def test_the_shipped_model_is_the_fast_path_model() -> None:
    """The default is a frames-only Whisper model with a head for profiles (its outputs are pinned once, in
    tests/test_shipped_model.py)."""
    rec = EmotionRecognizer.from_bundle("default")
    speech = rec.speech
    assert (speech.architecture, speech.exposed_layers, speech.hidden_size) == ("whisper", (3,), 512)
    assert speech.provenance["source"]["model_bin_sha256"].startswith("905e5bf8336b")
    assert rec.bundle.manifest.speaker_fusion is not None
    assert rec.bundle.manifest.fusion is not None and rec.bundle.manifest.fusion.levels == ("frame",)
    assert not rec._needs_segments(None)


@pytest.mark.parametrize("as_json", [True, False])
def test_cli_predict_reports_a_bad_file_and_goes_on(tmp_path: Path, as_json: bool) -> None:
    """One unreadable file among several: the others are still predicted, the bad one is named in its own row
    (a JSON line with "error", or a table row and a message), and the exit status says something failed."""
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not audio")
    result = CliRunner().invoke(main, ["predict", str(SAMPLE), str(bad), str(SAMPLE), *(["--json"] if as_json else [])])
    assert result.exit_code == 1
    assert "1 of 3 files could not be predicted" in result.output and "Traceback" not in result.output
    if as_json:
        rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
        assert [("error" in r) for r in rows] == [False, True, False]
        assert str(bad) in rows[1]["error"] and rows[0]["label"] == rows[2]["label"]
    else:
        labels = [line.split("│")[2].strip() for line in result.output.splitlines() if line.startswith("│")]
        labels = [label for label in labels if label]  # a long path folds onto lines with no label
        assert [label == "error" for label in labels] == [False, True, False]
        assert "error: " in result.output and "cannot decode audio" in " ".join(result.output.split())


def test_non_finite_scores_are_refused_not_printed_as_a_label() -> None:
    """A damaged head that returns NaN gives a clear BundleError, never a label or `"neutral": NaN` in JSON."""
    rec = EmotionRecognizer.from_bundle("default")
    real = rec._head
    assert real is not None
    rec._head = lambda speech, text: {k: np.full_like(v, np.nan) for k, v in real(speech, text).items()}
    with pytest.raises(BundleError, match="non-finite scores"):
        rec.predict(SAMPLE)
