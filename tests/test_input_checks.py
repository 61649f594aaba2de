"""Input checks of the runtime that need no torch: transcripts refused before any work, with one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgeser import EmotionRecognizer
from edgeser.errors import TextError
from tests.conftest import SAMPLE


def test_transcripts_that_cannot_be_the_audios_are_refused_before_any_work() -> None:
    """Limits checked in microseconds, where a 3000-letter "word" cost the aligner 21 s and 100k characters did
    not finish in 30 s; a lone surrogate was a traceback."""

    from edgeser.text import check_transcript

    assert check_transcript("kids are talking by the door", 2.0) == "kids are talking by the door"
    cases = [("a" * 3000, 100.0, "3000-character word"), ("a " * 50_000, 2.0, "100000 characters for 2.0 s"),
             ("ok \ud800", 2.0, "not valid Unicode at position 3"), (b"bytes", 2.0, "bytes, expected str")]
    for text, seconds, message in cases:
        with pytest.raises(TextError, match=message):
            check_transcript(text, seconds)


def test_predict_refuses_an_impossible_transcript_with_one_line() -> None:
    from edgeser.audio import load_audio

    rec = EmotionRecognizer.from_bundle("default")
    wave = load_audio(SAMPLE)
    for text in ("a" * 3000, "x\udcff"):
        for segments in (False, True):
            with pytest.raises(TextError):
                rec.predict(wave, text=text, sample_rate=16000, segments=segments)
    assert rec.predict(wave, text="version 1.2.3", sample_rate=16000, segments=True).segmentation is not None


def run(*args: object) -> tuple[int, str]:
    from click.testing import CliRunner

    from edgeser.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception  # no traceback
    return result.exit_code, result.output


def test_transcripts_csv_missing_relative_and_unmatched(tmp_path: Path) -> None:
    """--transcripts: a missing CSV is one line (was a traceback); its relative paths are read against the
    CSV's folder, not the working directory; rows matching no AUDIO and AUDIO without a row are reported."""
    code, out = run("predict", SAMPLE, "--transcripts", tmp_path / "missing.csv")
    assert code == 2 and "cannot read it" in out and "Traceback" not in out
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / "a.wav")
    shutil.copy(SAMPLE, folder / "b.wav")
    (folder / "t.csv").write_text("path,transcript\na.wav,kids are talking by the door\nelsewhere.wav,x\n")
    code, out = run("predict", folder / "a.wav", folder / "b.wav", "--transcripts", folder / "t.csv", "--segments",
                    "--json")
    assert code == 0, out
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert rows[0]["transcript"] == "kids are talking by the door"
    assert "1 rows name no AUDIO" in out and "no row for 1 AUDIO" in out


def test_cli_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    import soundfile as sf

    code, out = run("align", SAMPLE, "--textgrid", tmp_path / "no" / "such" / "out.TextGrid")
    assert code == 2 and "does not exist" in out
    sf.write(tmp_path / "long.wav", (0.1 * np.random.default_rng(0).standard_normal(16000 * 65)).astype("f4"), 16000)
    code, out = run("predict", tmp_path / "long.wav")
    assert code == 1 and "edgeser listen --file" in out and "max_audio_s); raise" not in out

    import edgeser._optional as optional

    real = optional.importlib.import_module

    def no_portaudio(name: str) -> object:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real(name)

    monkeypatch.setattr(optional.importlib, "import_module", no_portaudio)
    code, out = run("listen", "--mic")
    assert code == 1 and "PortAudio" in out and "libportaudio2" in out


def test_a_clip_too_short_for_an_utterance_is_refused() -> None:
    """A 0.1 s clip was given a label (neutral) as if it were speech."""
    import numpy as np

    from edgeser.errors import AudioError

    rec = EmotionRecognizer.from_bundle("default")
    clip = (0.1 * np.random.default_rng(0).standard_normal(1600)).astype(np.float32)
    with pytest.raises(AudioError, match="too short to hold an utterance"):
        rec.predict(clip, sample_rate=16000)


def test_noise_is_no_speech_rather_than_a_confident_label(tmp_path: Path) -> None:
    """White noise was labelled "sad 0.94"; with the speech check (the default of the CLI and of Python alike, so a
    file gets the same answer from both: issue 25, item 5) it is refused as no speech, and the bundled sample still
    gets its label."""
    import numpy as np
    import soundfile as sf

    from edgeser.errors import NoSpeechError

    rec = EmotionRecognizer.from_bundle("default")
    noise = (0.3 * np.random.default_rng(0).standard_normal(48_000)).astype(np.float32)
    with pytest.raises(NoSpeechError, match="no speech found"):
        rec.predict(noise, sample_rate=16000)
    assert rec.predict(SAMPLE).label
    assert rec.predict(noise, sample_rate=16000, check_speech=False).label  # asked for: a label anyway
    sf.write(tmp_path / "noise.wav", noise, 16000)
    code, out = run("predict", SAMPLE, tmp_path / "noise.wav")
    assert code == 1 and "no speech found" in out and "1 of 2 files" in out


def test_the_speech_check_counts_speech_silero_scores_low() -> None:
    """Shouted speech that silero scores 0.15-0.5 (16 of 1,200 RAVDESS recordings never reach 0.5 for 0.25 s) is
    speech to the check; chunks under 0.15 are not (benchmarks/results/speech_check.json: no synthesised noise,
    tone or music reached 0.15 for 0.25 s)."""
    import numpy as np

    from edgeser.audio.vad import Voicing
    from edgeser.errors import NoSpeechError

    rec = EmotionRecognizer.from_bundle("default")
    wave = np.zeros(48_000, np.float32)
    shouted = np.zeros(94, np.float32)
    shouted[20:40] = 0.25  # 0.64 s at 0.25: under silero's 0.5, over the check's 0.15
    rec.check_speech(wave, voiced=Voicing(shouted))
    with pytest.raises(NoSpeechError, match=r"0\.00 of 3\.0 s"):
        rec.check_speech(wave, voiced=Voicing(np.full(94, 0.1, np.float32)))
