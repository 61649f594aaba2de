"""Labelled utterances from IEMOCAP, RAVDESS, MELD (text) or a CSV manifest, with speaker-independent folds.

Every loader maps its corpus onto the four classes of the seed paper (neutral, happy, angry, sad) and
gives each utterance a ``group`` that folds never split: the IEMOCAP session, the RAVDESS actor, the
MELD split, or the manifest's ``fold``/``speaker`` column. Nothing here needs torch.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeser.errors import DatasetError
from edgeser.model.bundle import DEFAULT_LABELS

IEMOCAP_LABELS = {"neu": "neutral", "hap": "happy", "exc": "happy", "ang": "angry", "sad": "sad"}
"""The standard 4-class IEMOCAP protocol: excited merged into happy; frustration, surprise, xxx, ... dropped."""
MELD_LABELS = {"neutral": "neutral", "joy": "happy", "anger": "angry", "sadness": "sad"}
_EMO_LINE = re.compile(r"^\[(\d+\.\d+) - (\d+\.\d+)\]\t(\w+)\t(\w+)\t\[")
_TRN_LINE = re.compile(r"^(Ses0[1-5][MF]_(?:impro|script)\d\d[ab]?(?:_\d[ab]?)?_[MF][X\d]{2}\d) "
                       r"\[\d+\.\d+-\d+\.\d+\]:(.*)$")


@dataclass(frozen=True)
class Utterance:
    """One labelled example. ``path`` is ``None`` for text-only corpora (MELD)."""

    id: str
    path: Path | None
    speaker: str
    group: str
    label: str
    transcript: str | None


@dataclass(frozen=True)
class Dataset:
    """Utterances with a fixed label set and speaker-independent folds."""

    name: str
    utterances: tuple[Utterance, ...]
    labels: tuple[str, ...] = DEFAULT_LABELS

    def __len__(self) -> int:
        return len(self.utterances)

    def label_ids(self) -> np.ndarray:
        index = {label: i for i, label in enumerate(self.labels)}
        return np.array([index[u.label] for u in self.utterances], dtype=np.int64)

    def counts(self) -> dict[str, int]:
        c = Counter(u.label for u in self.utterances)
        return {label: c.get(label, 0) for label in self.labels}

    def folds(self, n_folds: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(train, test)`` index arrays, leaving whole groups out.

        Args:
            n_folds: Number of folds; groups are dealt out in sorted order into contiguous blocks
                (20 RAVDESS actors into 5 folds gives actors 01-04, 05-08, ...). ``None``: one fold per
                group (IEMOCAP: leave one session out).
        """
        groups = sorted({u.group for u in self.utterances})
        n = len(groups) if n_folds is None else n_folds
        if not 2 <= n <= len(groups):
            raise DatasetError(f"{self.name}: {n} folds asked, but there are {len(groups)} groups "
                               f"({', '.join(groups[:5])}...); use 2 to {len(groups)}")
        member = np.array([groups.index(u.group) for u in self.utterances])
        blocks = np.array_split(np.arange(len(groups)), n)
        out = []
        for block in blocks:
            test = np.flatnonzero(np.isin(member, block))
            out.append((np.flatnonzero(~np.isin(member, block)), test))
        return out

    def subset(self, indices: Sequence[int] | np.ndarray) -> Dataset:
        return Dataset(self.name, tuple(self.utterances[i] for i in indices), self.labels)


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise DatasetError(f"{path}: not found ({what})")
    return path


def load_iemocap(root: str | os.PathLike[str]) -> Dataset:
    """IEMOCAP in its release layout (``IEMOCAP_full_release/Session1..5``), 4 classes, groups = sessions.

    Labels come from ``SessionN/dialog/EmoEvaluation/<dialog>.txt`` (the consensus line of each turn),
    transcripts from ``SessionN/dialog/transcriptions/<dialog>.txt``, audio from
    ``SessionN/sentences/wav/<dialog>/<utt>.wav``. The speaker is the session plus the gender letter
    that ends the utterance id's prefix (``Ses01F_impro01_M003`` → ``Ses01M``).
    """
    root = _require(Path(root), "the IEMOCAP_full_release folder")
    sessions = sorted(p for p in root.glob("Session[1-5]") if p.is_dir())
    if not sessions:
        raise DatasetError(f"{root}: no Session1..Session5 folders; point at IEMOCAP_full_release")
    utterances = []
    for session in sessions:
        transcripts: dict[str, str] = {}
        for f in sorted((session / "dialog" / "transcriptions").glob("*.txt")):
            for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
                if m := _TRN_LINE.match(line.strip()):
                    transcripts[m.group(1)] = m.group(2).strip()
        evaluations = sorted((session / "dialog" / "EmoEvaluation").glob("*.txt"))
        if not evaluations:
            raise DatasetError(f"{session}/dialog/EmoEvaluation: no label files")
        for f in evaluations:
            dialog = f.stem
            for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
                m = _EMO_LINE.match(line)
                if not m or m.group(4) not in IEMOCAP_LABELS:
                    continue
                utt = m.group(3)
                speaker = f"{utt[:5]}{utt.rsplit('_', 1)[1][0]}"
                utterances.append(Utterance(
                    id=utt, path=session / "sentences" / "wav" / dialog / f"{utt}.wav", speaker=speaker,
                    group=session.name, label=IEMOCAP_LABELS[m.group(4)], transcript=transcripts.get(utt)))
    return Dataset("iemocap", tuple(utterances))


def load_ravdess(root: str | os.PathLike[str]) -> Dataset:
    """A corpus in RAVDESS's layout (``labels.csv`` with ``emotion4`` + audio; ``../shared/data`` also holds EmoDB
    and TurEV so), the 4-class subset, groups = speakers. The dataset is named after its folder, lower case
    (``ravdess``, ``emodb``, ``turev``): the name a head trained on several corpora records its speakers under."""
    root = Path(root)
    rows = _read_csv(_require(root / "labels.csv", "RAVDESS labels.csv"),
                     ("path", "speaker", "emotion4", "transcript"))
    utterances = tuple(
        Utterance(id=Path(r["path"]).stem, path=root / r["path"], speaker=r["speaker"], group=r["speaker"],
                  label=r["emotion4"], transcript=r["transcript"])
        for r in rows if r["emotion4"])
    return Dataset(root.resolve().name.lower() or "ravdess", utterances)


def ravdess_unscored(root: str | os.PathLike[str]) -> dict[str, list[Path]]:
    """Per actor, the RAVDESS recordings outside the 4-class subset (calm, fearful, disgust, surprised: 32 per
    actor, about two minutes), in file-name order: speech of that speaker that is never scored, to enrol the
    speaker with (:mod:`edgeser.speaker`)."""
    root = Path(root)
    rows = _read_csv(_require(root / "labels.csv", "RAVDESS labels.csv"), ("path", "speaker", "emotion4"))
    out: dict[str, list[Path]] = {}
    for r in sorted(rows, key=lambda r: r["path"]):
        if not r["emotion4"]:
            out.setdefault(r["speaker"], []).append(root / r["path"])
    return out


def load_meld(root: str | os.PathLike[str], splits: Sequence[str] = ("train", "dev", "test")) -> Dataset:
    """MELD utterance text, 4 classes (joy → happy, anger → angry, sadness → sad), groups = splits."""
    utterances = []
    for split in splits:
        path = _require(Path(root) / f"{split}_sent_emo.csv", f"MELD {split} split")
        for r in _read_csv(path, ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID")):
            if r["Emotion"] in MELD_LABELS:
                utterances.append(Utterance(
                    id=f"{split}_dia{r['Dialogue_ID']}_utt{r['Utterance_ID']}", path=None, speaker=r["Speaker"],
                    group=split, label=MELD_LABELS[r["Emotion"]], transcript=r["Utterance"].replace("’", "'")))
    return Dataset("meld", tuple(utterances))


def load_manifest(path: str | os.PathLike[str], labels: Sequence[str] = DEFAULT_LABELS) -> Dataset:
    """A CSV with columns ``path,speaker,label`` and optional ``transcript`` and ``fold``.

    Paths are relative to the CSV's folder. Folds group by ``fold`` when present, else by speaker.
    Rows whose label is empty are skipped; any other label outside ``labels`` is an error.
    """
    path = Path(path)
    rows = _read_csv(_require(path, "dataset manifest"), ("path", "speaker", "label"))
    bad = sorted({r["label"] for r in rows if r["label"] and r["label"] not in labels})
    if bad:
        raise DatasetError(f"{path}: labels {bad} are not in the label set {list(labels)}; map them or drop "
                           "those rows (an empty label skips a row)")
    utterances = tuple(
        Utterance(id=Path(r["path"]).stem, path=path.parent / r["path"], speaker=r["speaker"],
                  group=r.get("fold") or r["speaker"], label=r["label"], transcript=r.get("transcript") or None)
        for r in rows if r["label"])
    if not utterances:
        raise DatasetError(f"{path}: no labelled rows")
    return Dataset(path.stem, utterances, tuple(labels))


def heard_groups(recorded: Iterable[str], dataset: Dataset) -> set[str]:
    """The groups of ``dataset`` that a head's record of training groups (``train_groups`` in bundle.json) names.

    A head trained on one corpus records its groups as they are (``Actor_01``); one trained on several records
    ``corpus:group`` (``ravdess:Actor_01``), matched against the dataset's name. When the dataset's name is none of
    the recorded corpora (a copy in a folder named otherwise), a group recorded under any corpus counts as heard:
    an unseen speaker who shares an id with a trained one is then left out, never a trained one scored as unseen.
    """
    recorded = set(recorded)
    corpora = {r.split(":", 1)[0] for r in recorded if ":" in r}
    groups = {u.group for u in dataset.utterances}
    if dataset.name in corpora:
        return {g for g in groups if g in recorded or f"{dataset.name}:{g}" in recorded}
    bare = {r.split(":", 1)[-1] for r in recorded}
    return groups & bare


def _read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path}: missing columns {missing}; found {reader.fieldnames}")
        return list(reader)


def iter_missing_audio(dataset: Dataset) -> Iterator[Path]:
    """Audio paths the dataset names that do not exist (check before any work starts)."""
    for u in dataset.utterances:
        if u.path is not None and not u.path.is_file():
            yield u.path


def open_dataset(source: str | os.PathLike[str]) -> Dataset:
    """A dataset from a folder or CSV, recognising the corpus by its files.

    - a CSV with an ``emotion4`` column (``ravdess/labels.csv``) or a folder holding one → RAVDESS;
    - a folder with ``Session1``..``Session5`` → IEMOCAP; a folder with ``train_sent_emo.csv`` → MELD;
    - any other CSV → :func:`load_manifest` (``path,speaker,label[,transcript][,fold]``).
    """
    path = Path(source)
    if path.is_dir():
        if (path / "labels.csv").is_file():
            return load_ravdess(path)
        if any(path.glob("Session[1-5]")):
            return load_iemocap(path)
        if (path / "train_sent_emo.csv").is_file():
            return load_meld(path)
        raise DatasetError(f"{path}: not a RAVDESS, IEMOCAP or MELD folder; pass a manifest CSV "
                           "(path,speaker,label[,transcript])")
    with open(_require(path, "dataset manifest"), newline="", encoding="utf-8", errors="replace") as f:
        header = next(csv.reader(f), [])
    return load_ravdess(path.parent) if "emotion4" in header else load_manifest(path)
