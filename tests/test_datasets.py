"""Dataset loaders (IEMOCAP on a fixture in its exact layout, RAVDESS, MELD, CSV manifests) and folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeser.datasets import (
    heard_groups,
    iter_missing_audio,
    load_iemocap,
    load_manifest,
    load_meld,
    load_ravdess,
    open_dataset,
)
from edgeser.errors import DatasetError
from tests.conftest import DATA

EMO_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"


def write_iemocap(root: Path) -> Path:
    """A two-session IEMOCAP_full_release with the real file formats (labels, transcripts, wav paths)."""
    turns = {  # session -> dialog -> [(utt, emo, transcript)]
        1: {"Ses01F_impro01": [("Ses01F_impro01_F000", "neu", "Excuse me."),
                               ("Ses01F_impro01_M000", "exc", "Do you have your forms?"),
                               ("Ses01F_impro01_F001", "fru", "Yeah."),
                               ("Ses01F_impro01_M001", "xxx", "Let me see them.")],
            "Ses01F_script01_1": [("Ses01F_script01_1_F000", "ang", "What is it now?"),
                                  ("Ses01F_script01_1_M000", "hap", "I got the job!")]},
        2: {"Ses02M_impro05a": [("Ses02M_impro05a_M000", "sad", "She left this morning."),
                                ("Ses02M_impro05a_F000", "sur", "Really?")]},
    }
    for session, dialogs in turns.items():
        base = root / f"Session{session}"
        for dialog, items in dialogs.items():
            emo, trn = [EMO_HEADER], []
            for k, (utt, label, text) in enumerate(items):
                start, end = 6.2901 + 3 * k, 8.2357 + 3 * k
                emo.append(f"[{start:.4f} - {end:.4f}]\t{utt}\t{label}\t[2.5000, 2.5000, 2.5000]\n"
                           "C-E2:\tNeutral;\t()\nC-E3:\tNeutral;\t()\nA-E3:\tval 3; act 2; dom  2;\t()\n\n")
                trn.append(f"{utt} [{start:07.4f}-{end:07.4f}]: {text}\n")
                wav = base / "sentences" / "wav" / dialog / f"{utt}.wav"
                wav.parent.mkdir(parents=True, exist_ok=True)
                wav.write_bytes(b"")
            trn.append(f"{dialog}_MXX0 [000.0000-001.0000]: [BREATHING]\n")  # a non-turn line parsers skip
            (base / "dialog" / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
            (base / "dialog" / "transcriptions").mkdir(parents=True, exist_ok=True)
            (base / "dialog" / "EmoEvaluation" / f"{dialog}.txt").write_text("".join(emo))
            (base / "dialog" / "transcriptions" / f"{dialog}.txt").write_text("".join(trn))
    return root


def test_iemocap_fixture(tmp_path: Path) -> None:
    ds = load_iemocap(write_iemocap(tmp_path / "IEMOCAP_full_release"))
    by_id = {u.id: u for u in ds.utterances}
    assert set(by_id) == {"Ses01F_impro01_F000", "Ses01F_impro01_M000", "Ses01F_script01_1_F000",
                          "Ses01F_script01_1_M000", "Ses02M_impro05a_M000"}  # fru, xxx, sur dropped
    assert by_id["Ses01F_impro01_M000"].label == "happy"  # excited merged into happy
    assert by_id["Ses01F_script01_1_M000"].label == "happy"
    assert by_id["Ses01F_impro01_M000"].speaker == "Ses01M" and by_id["Ses01F_impro01_F000"].speaker == "Ses01F"
    assert by_id["Ses02M_impro05a_M000"].transcript == "She left this morning."
    assert by_id["Ses01F_script01_1_F000"].path == (tmp_path / "IEMOCAP_full_release" / "Session1" / "sentences" /
                                                    "wav" / "Ses01F_script01_1" / "Ses01F_script01_1_F000.wav")
    assert ds.counts() == {"neutral": 1, "happy": 2, "angry": 1, "sad": 1}
    folds = ds.folds()  # leave one session out
    assert len(folds) == 2
    for train, test in folds:
        assert {ds.utterances[i].group for i in train}.isdisjoint({ds.utterances[i].group for i in test})
    assert list(iter_missing_audio(ds)) == []


def test_iemocap_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_iemocap(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no Session1\.\.Session5"):
        load_iemocap(tmp_path / "empty")


def test_ravdess_folds_by_actor() -> None:
    if not (DATA / "ravdess" / "labels.csv").is_file():
        pytest.skip(f"RAVDESS not found under {DATA} (see ../shared/data/README.md)")
    ds = load_ravdess(DATA / "ravdess")
    assert len(ds) == 560 and ds.counts() == {"neutral": 80, "happy": 160, "angry": 160, "sad": 160}
    folds = ds.folds(5)
    assert len(folds) == 5
    seen: set[str] = set()
    for train, test in folds:
        held_out = {ds.utterances[i].speaker for i in test}
        assert len(held_out) == 4 and held_out.isdisjoint({ds.utterances[i].speaker for i in train})
        assert not held_out & seen
        seen |= held_out
    assert {u.speaker for u in ds.utterances[:1]} == {"Actor_01"} and ds.folds(5)[0][1].size == 112
    assert list(iter_missing_audio(ds)) == []


def test_meld_text() -> None:
    if not (DATA / "meld_text").is_dir():
        pytest.skip(f"MELD text not found under {DATA} (see ../shared/data/README.md)")
    test = load_meld(DATA / "meld_text", splits=("test",))
    assert test.counts() == {"neutral": 1256, "happy": 402, "angry": 345, "sad": 208}
    assert all(u.path is None and u.transcript for u in test.utterances)
    assert len(load_meld(DATA / "meld_text").folds()) == 3


def test_manifest(tmp_path: Path) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("path,speaker,label,transcript\na.wav,s1,happy,hi\nb.wav,s2,,skip me\nc.wav,s2,sad,\n")
    ds = load_manifest(csv)
    assert [u.label for u in ds.utterances] == ["happy", "sad"] and ds.utterances[1].transcript is None
    assert ds.utterances[0].path == tmp_path / "a.wav"
    assert [p.name for p in iter_missing_audio(ds)] == ["a.wav", "c.wav"]
    np.testing.assert_array_equal(ds.label_ids(), [1, 3])
    csv.write_text("path,speaker,label\na.wav,s1,excited\n")
    with pytest.raises(DatasetError, match=r"labels \['excited'\] are not in the label set"):
        load_manifest(csv)
    csv.write_text("file,who,label\na.wav,s1,sad\n")
    with pytest.raises(DatasetError, match=r"missing columns \['path', 'speaker'\]"):
        load_manifest(csv)
    csv.write_text("path,speaker,label\na.wav,s1,sad\n")
    with pytest.raises(DatasetError, match="1 groups"):
        load_manifest(csv).folds()


def _layout(root: Path, speakers: list[str]) -> None:
    """A corpus in RAVDESS's layout (``labels.csv`` with ``emotion4``) with one neutral file per speaker."""
    root.mkdir(parents=True)
    rows = ["path,speaker,emotion4,transcript"] + [f"audio/{s}.wav,{s},neutral," for s in speakers]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


def test_a_corpus_is_named_after_its_folder_and_its_trained_speakers_are_found(tmp_path: Path) -> None:
    _layout(tmp_path / "EmoDB", ["03", "08", "16"])
    emodb = open_dataset(tmp_path / "EmoDB")
    assert emodb.name == "emodb"  # was "ravdess" for every corpus in this layout
    # a head trained on several corpora records "corpus:speaker": matched under the dataset's own name only
    recorded = ["emodb:03", "emodb:08", "ravdess:16"]
    assert heard_groups(recorded, emodb) == {"03", "08"}
    # the same corpus in a folder named otherwise: a speaker recorded under any corpus counts as heard
    _layout(tmp_path / "berlin", ["03", "08", "16"])
    assert heard_groups(recorded, open_dataset(tmp_path / "berlin")) == {"03", "08", "16"}
    # a head trained on one corpus records speakers as they are
    assert heard_groups(["08"], emodb) == {"08"}
