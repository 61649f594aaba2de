"""How often the speech check (``predict``'s refusal of audio that holds no speech) refuses real speech, and how
often it lets non-speech through, for candidate rules over silero-vad's probabilities.

    python -m edgeser_benchmarks.speech_check --out benchmarks/results/speech_check.json

Speech: every recording of RAVDESS, EmoDB and TurEV (all emotions, shouted and whispered ones included) and the
LibriSpeech narration. Non-speech, synthesised (no corpus of it is here): silence (digital and a quiet room), white,
pink and brown noise at -40, -25 and -10 dBFS, a steady tone, a sung-like vibrato tone, chords, a melody of
harmonic notes with percussive bursts, clicks; 3 s each, 5 draws. A rule is a function of silero-vad's speech
probability per 32 ms chunk (:func:`edgeser.audio.vad.voicing`). The rule chosen, fixed before the run: the one that
refuses the least speech among those that let no synthesised non-speech through.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import track

from edgeser.audio import load_audio
from edgeser.audio.vad import CHUNK, voicing
from edgeser_benchmarks.provenance import write_result
from edgeser_export import augment as aug

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SR = 16000
CHUNK_S = CHUNK / SR
MIN_S = 0.25

RULES: dict[str, Callable[[np.ndarray], bool]] = {
    "p>=0.5 for 0.25 s (before)": lambda p: (p >= 0.5).sum() * CHUNK_S >= MIN_S,
    "p>=0.5 for 0.25 s, or a chunk at 0.5 and p>=0.15 for 0.25 s":
        lambda p: (p >= 0.5).sum() * CHUNK_S >= MIN_S or (p.max() >= 0.5 and (p >= 0.15).sum() * CHUNK_S >= MIN_S),
    "p>=0.3 for 0.25 s": lambda p: (p >= 0.3).sum() * CHUNK_S >= MIN_S,
    "p>=0.15 for 0.25 s": lambda p: (p >= 0.15).sum() * CHUNK_S >= MIN_S,
    "p>=0.5 for 0.064 s": lambda p: (p >= 0.5).sum() * CHUNK_S >= 0.064,
}


def speech() -> Iterator[tuple[str, Path]]:
    for corpus in ("ravdess", "emodb", "turev"):
        with open(DATA / corpus / "labels.csv", newline="") as f:
            for row in csv.DictReader(f):
                yield corpus, DATA / corpus / row["path"]
    with open(DATA / "librispeech" / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            yield "librispeech", DATA / "librispeech" / row["path"]


def at(x: np.ndarray | float, dbfs: float) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.asarray(x / (np.sqrt(np.mean(x**2)) + 1e-12) * 10 ** (dbfs / 20), dtype=np.float32)


def non_speech(draws: int = 5, seconds: float = 3.0) -> Iterator[tuple[str, np.ndarray]]:
    n = int(seconds * SR)
    t = np.arange(n) / SR
    for d in range(draws):
        rng = np.random.default_rng(d)
        yield "digital silence", np.zeros(n, np.float32)
        yield "quiet room (-70 dBFS)", at(aug.coloured_noise(n, "pink", rng), -70)
        for colour in ("white", "pink", "brown"):
            for level in (-40, -25, -10):
                yield f"{colour} noise {level} dBFS", at(aug.coloured_noise(n, colour, rng), level)
        f0 = rng.uniform(110, 440)
        yield "steady tone", at(np.sin(2 * np.pi * f0 * t), -20)
        vib = f0 * (1 + 0.02 * np.sin(2 * np.pi * 5.5 * t))
        phase = 2 * np.pi * np.cumsum(vib) / SR
        yield "vibrato tone, harmonics", at(sum(np.sin(k * phase) / k for k in range(1, 8)), -20)
        chord = sum(np.sin(2 * np.pi * f0 * r * k * t) / k for r in (1, 1.26, 1.5) for k in range(1, 5))
        yield "chord", at(chord, -20)
        melody = np.zeros(n)
        for start in range(0, n, SR // 4):
            f = f0 * 2 ** (rng.integers(0, 12) / 12)
            seg = np.arange(min(SR // 4, n - start)) / SR
            melody[start : start + seg.size] = sum(np.sin(2 * np.pi * f * k * seg) / k for k in range(1, 6)) * \
                np.exp(-3 * seg)
            if rng.random() < 0.5:
                melody[start : start + 800] += rng.standard_normal(min(800, n - start)) * np.exp(-np.arange(
                    min(800, n - start)) / 150)
        yield "melody with percussion", at(melody, -20)
        clicks = np.zeros(n)
        clicks[rng.integers(0, n, 30)] = 1.0
        yield "clicks", at(clicks, -30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/speech_check.json"))
    args = ap.parse_args()
    passed: dict[str, dict[str, list[bool]]] = {r: {} for r in RULES}
    refused_examples: dict[str, list[str]] = {r: [] for r in RULES}
    items = list(speech())
    for corpus, path in track(items, description="speech"):
        p = voicing(load_audio(path, max_seconds=None)).probabilities
        for name, rule in RULES.items():
            ok = bool(rule(p))
            passed[name].setdefault(corpus, []).append(ok)
            if not ok and len(refused_examples[name]) < 10:
                refused_examples[name].append(str(path.relative_to(DATA)))
    for kind, wave in non_speech():
        p = voicing(wave).probabilities
        for name, rule in RULES.items():
            passed[name].setdefault(f"non-speech: {kind}", []).append(bool(rule(p)))
    rows: dict[str, dict[str, Any]] = {}
    for name in RULES:
        speech_rows = {c: v for c, v in passed[name].items() if not c.startswith("non-speech")}
        other = {c: v for c, v in passed[name].items() if c.startswith("non-speech")}
        rows[name] = {
            "speech_refused": {c: {"refused": int(len(v) - sum(v)), "of": len(v)} for c, v in speech_rows.items()},
            "speech_refused_share": round(1 - sum(map(sum, speech_rows.values())) /
                                          sum(map(len, speech_rows.values())), 4),
            "non_speech_accepted": {c.removeprefix("non-speech: "): {"accepted": int(sum(v)), "of": len(v)}
                                    for c, v in other.items()},
            "non_speech_accepted_total": int(sum(map(sum, other.values()))),
            "refused_examples": refused_examples[name]}
    clean = [n for n, r in rows.items() if r["non_speech_accepted_total"] == 0]
    chosen = min(clean, key=lambda n: rows[n]["speech_refused_share"]) if clean else None
    write_result(args.out, {"rules": rows, "chosen": chosen,
                            "rule_for_choosing": "least speech refused among rules that let no synthesised "
                                                 "non-speech through",
                            "speech_files": len(items)})
    for name, r in rows.items():
        print(f"{name:70s} speech refused {100 * r['speech_refused_share']:.2f}%  non-speech accepted "
              f"{r['non_speech_accepted_total']}")
    print(f"chosen: {chosen}")


if __name__ == "__main__":
    main()
