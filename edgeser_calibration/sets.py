"""Calibration sets: a few dozen utterances that represent what a deployed model will hear.

INT8 calibration picks each activation's range from the data it sees, so the set must cover the classes,
the speakers and the audio lengths of deployment. :func:`build` draws utterances round-robin over classes
and, within a class, over speakers (seeded), and gives item ``k`` a target length spread geometrically over
``[min_s, max_s]``: a longer utterance is cropped to it, a shorter one is extended with more utterances of
the same speaker and class. The set is a folder, written atomically::

    calibration.json    items (sources, speaker, label, transcript, seconds), seed, source, sha256
    audio/000.wav ...   16 kHz mono PCM16

``sha256`` covers the audio and the item list; quantized bundles record it, so a variant names the exact
data it was calibrated on.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeser.audio import load_audio
from edgeser.datasets import Dataset, Utterance
from edgeser.errors import DatasetError, InputError
from edgeser.model.writer import staged_folder

FORMAT = "edgeser-calibration"
INDEX = "calibration.json"
SAMPLE_RATE = 16_000
_GAP_S = 0.2  # silence between joined utterances


@dataclass(frozen=True)
class CalibrationItem:
    """One calibration utterance: ``sources`` are ``(utterance id, start s, end s)`` pieces joined in order."""

    audio: str
    sources: tuple[tuple[str, float, float], ...]
    speaker: str
    label: str
    transcript: str | None
    seconds: float


@dataclass(frozen=True)
class CalibrationSet:
    """A prepared set on disk."""

    root: Path
    items: tuple[CalibrationItem, ...]
    seed: int
    source: str
    lengths_s: tuple[float, float]
    sha256: str

    def __len__(self) -> int:
        return len(self.items)

    def audio(self, index: int) -> np.ndarray:
        """Item ``index`` as float32 samples at 16 kHz."""
        return load_audio(self.root / self.items[index].audio)

    def waves(self) -> Iterator[np.ndarray]:
        for i in range(len(self.items)):
            yield self.audio(i)

    def describe(self) -> dict[str, Any]:
        """What a quantized bundle records about its calibration data."""
        labels = sorted({it.label for it in self.items})
        return {"sha256": self.sha256, "items": len(self.items), "seed": self.seed, "source": self.source,
                "lengths_s": list(self.lengths_s), "speakers": len({it.speaker for it in self.items}),
                "per_label": {lb: sum(it.label == lb for it in self.items) for lb in labels},
                "seconds": [round(min(it.seconds for it in self.items), 2),
                            round(max(it.seconds for it in self.items), 2)]}

    @classmethod
    def load(cls, root: str | os.PathLike[str], verify: bool = True) -> CalibrationSet:
        """Read a set written by :func:`build`.

        Raises:
            DatasetError: Not a calibration set, or (``verify``) its files do not match the recorded sha256.
        """
        root = Path(root)
        index = root / INDEX
        if not index.is_file():
            raise DatasetError(f"{root}: no {INDEX}; build a set with `edgeser calibration build`")
        try:
            raw = json.loads(index.read_text(encoding="utf-8"))
            if raw.get("format") != FORMAT:
                raise InputError(f"format is {raw.get('format')!r}")
            items = tuple(CalibrationItem(audio=i["audio"], sources=tuple(tuple(s) for s in i["sources"]),
                                          speaker=i["speaker"], label=i["label"], transcript=i["transcript"],
                                          seconds=float(i["seconds"])) for i in raw["items"])
            out = cls(root=root, items=items, seed=int(raw["seed"]), source=str(raw["source"]),
                      lengths_s=(float(raw["lengths_s"][0]), float(raw["lengths_s"][1])), sha256=str(raw["sha256"]))
        except (KeyError, TypeError, ValueError) as e:
            raise DatasetError(f"{index}: malformed ({e}); rebuild the set") from e
        if verify and (digest := content_hash(root, items)) != out.sha256:
            raise DatasetError(f"{root}: content sha256 is {digest[:12]}…, {INDEX} records {out.sha256[:12]}…; "
                               "a file was changed or is missing, rebuild the set")
        return out


def content_hash(root: Path, items: tuple[CalibrationItem, ...]) -> str:
    """sha256 over the item list and every audio file's bytes."""
    h = hashlib.sha256(json.dumps([asdict(i) for i in items], sort_keys=True).encode())
    for item in items:
        path = root / item.audio
        if not path.is_file():
            return "missing:" + item.audio
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def target_lengths(n: int, min_s: float, max_s: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` lengths spread geometrically over ``[min_s, max_s]`` (as many short as long, on a log scale),
    in random order."""
    lengths = np.geomspace(min_s, max_s, n) if n > 1 else np.array([np.sqrt(min_s * max_s)])
    return np.asarray(rng.permutation(lengths))


def choose(dataset: Dataset, n: int, rng: np.random.Generator) -> list[list[Utterance]]:
    """``n`` draws, round-robin over classes and, within a class, over its speakers (each class's speakers
    in a seeded order); each draw lists the chosen utterance first, then the other utterances of that
    speaker and class (shuffled) to extend it with."""
    cells: dict[str, dict[str, list[Utterance]]] = defaultdict(lambda: defaultdict(list))
    for u in dataset.utterances:
        if u.path is not None:
            cells[u.label][u.speaker].append(u)
    if not cells:
        raise DatasetError(f"{dataset.name}: no utterances with audio to calibrate on")
    labels = [lb for lb in dataset.labels if lb in cells]
    speaker_order = {lb: [str(s) for s in rng.permutation(sorted(cells[lb]))] for lb in labels}
    used: set[str] = set()
    draws = []
    for k in range(n):
        label = labels[k % len(labels)]
        speakers = speaker_order[label]
        speaker = speakers[(k // len(labels)) % len(speakers)]
        pool = cells[label][speaker]
        fresh = [u for u in pool if u.id not in used] or pool
        first = fresh[int(rng.integers(len(fresh)))]
        used.add(first.id)
        rest = [pool[int(i)] for i in rng.permutation(len(pool)) if pool[int(i)].id != first.id]
        draws.append([first, *rest])
    return draws


def build(dataset: Dataset, out: str | os.PathLike[str], *, n: int = 64, seed: int = 0, min_s: float = 1.0,
          max_s: float = 10.0, overwrite: bool = False,
          progress: Callable[[int, int], None] | None = None) -> CalibrationSet:
    """Draw, cut and write a calibration set (see the module docstring).

    Raises:
        DatasetError: Bad sizes, an existing ``out`` without ``overwrite``, or no usable audio.
    """
    import soundfile as sf

    if n < 1:
        raise DatasetError(f"a calibration set needs at least 1 item, got n={n}")
    if not 0 < min_s <= max_s:
        raise DatasetError(f"lengths must satisfy 0 < min_s <= max_s, got {min_s} and {max_s}")
    target = Path(out)
    if target.exists() and not overwrite:
        raise DatasetError(f"{target}: already exists; choose another --out or pass --overwrite")
    rng = np.random.default_rng(seed)
    draws = choose(dataset, n, rng)
    lengths = target_lengths(n, min_s, max_s, rng)
    with staged_folder(target) as staging:
        (staging / "audio").mkdir()
        items = []
        for k, (draw, seconds) in enumerate(zip(draws, lengths, strict=True)):
            wave, sources = _cut(draw, float(seconds), rng)
            name = f"audio/{k:03d}.wav"
            sf.write(staging / name, np.clip(wave, -1, 1), SAMPLE_RATE, subtype="PCM_16")
            transcripts = [u.transcript for u in itertools.islice(itertools.cycle(draw), len(sources)) if u.transcript]
            items.append(CalibrationItem(audio=name, sources=sources, speaker=draw[0].speaker, label=draw[0].label,
                                         transcript=" ".join(transcripts) or None, seconds=round(wave.size / 16e3, 3)))
            if progress is not None:
                progress(k + 1, n)
        frozen = tuple(items)
        digest = content_hash(staging, frozen)
        index = {"format": FORMAT, "seed": seed, "source": dataset.name, "lengths_s": [min_s, max_s],
                 "sha256": digest, "items": [asdict(i) for i in frozen]}
        (staging / INDEX).write_text(json.dumps(index, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return CalibrationSet.load(target)


def _cut(draw: list[Utterance], seconds: float, rng: np.random.Generator
         ) -> tuple[np.ndarray, tuple[tuple[str, float, float], ...]]:
    """The first utterance, joined with more of ``draw`` until ``seconds`` is reached, then cropped to it
    (a random window of the first utterance when that alone is longer). When the speaker has too little
    audio in that class, their utterances are used again, in the same order."""
    want = round(seconds * SAMPLE_RATE)
    gap = np.zeros(int(_GAP_S * SAMPLE_RATE), dtype=np.float32)
    pieces: list[np.ndarray] = []
    sources: list[tuple[str, float, float]] = []
    total = 0
    for u in itertools.islice(itertools.cycle(draw), 1000):
        assert u.path is not None
        wave = load_audio(u.path)
        if not pieces and wave.size > want:  # crop a window of the first utterance
            start = int(rng.integers(wave.size - want + 1))
            return wave[start : start + want], ((u.id, round(start / 16e3, 3), round((start + want) / 16e3, 3)),)
        take = min(wave.size, want - total)
        pieces += [gap, wave[:take]] if pieces else [wave[:take]]
        sources.append((u.id, 0.0, round(take / 16e3, 3)))
        total += take + (gap.size if len(pieces) > 1 else 0)
        if total >= want:
            break
    return np.concatenate(pieces)[:want], tuple(sources)
