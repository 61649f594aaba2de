"""How many augmented copies: the default's recipe with 0, 2 (shipped), 4 and 6 robot's-ear copies of each utterance.

    python -m edgeser_benchmarks.augmentation_choice --work runs/generalisation --jobs 2 \\
        --out benchmarks/results/augmentation_choice.json

The recipe is the default's (voiced frames; RAVDESS + EmoDB + TurEV balanced by corpus and class; the shipped head,
:data:`edgeser_export.multicorpus.HEAD`); only the number of augmented copies of each training utterance differs
(:func:`edgeser_export.augment.augment`: silence and crops, speed, rooms, coloured and babble noise at 0-20 dB,
band limits; each count draws its own copies). Features come from the feature cache of
:mod:`edgeser_benchmarks.generalisation` (``--work``), computed there first, ``--jobs`` corpora at a time.

Each variant is scored as :mod:`edgeser_benchmarks.head_choice` scores heads: leave-one-corpus-out UA and
calibration; RAVDESS five actor folds clean, with babble at 10 dB SNR, and trimmed (UA and the share given the whole
file's label). Rule, fixed before the run: the same *score* (mean of LOCO mean UA, RAVDESS fold UA and babble-10-dB
UA); the shipped count stays unless another beats it by more than 1 point. Choosing on the same scores flatters the
winner a little; every row is in the file.

**A second draw** (``--seed 1 --counts 2,6 --out benchmarks/results/augmentation_choice-seed1.json``): the first
run (seed 0, ``augmentation_choice.json``) kept 2 copies by the rule above, while 6 copies met two of issue 24's targets
that the fold heads measure and 2 copies did not (babble at 10 dB within 8 UA of clean folds: 7.8 against 9.2;
trimmed files given the whole file's label: 91.4% against 89.1%), at 0.6 points less mean LOCO UA. Whether that
holds or was the draw is asked of fresh copies (every augmented copy drawn anew; the clean features and test
conditions are the same). Rule, written down before the second draw was computed: 6 copies replace 2 if, on the
second draw, (a) the 6-copy fold heads meet both targets (babble 10 dB within 8 UA of their clean fold UA; at
least 90% of trimmed files given the whole file's label), (b) 2 copies do not meet both, (c) 6 copies' mean LOCO UA
is at most 1 point below 2 copies', and (d) their score is at most 1 point below. The file's ``confirmation`` says
which conditions held.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgeser import EmotionRecognizer, RuntimeOptions
from edgeser_benchmarks.generalisation import COPIES, Corpora, Recipe, conditions
from edgeser_benchmarks.head_choice import ROBOT, choose_and_write, robot_conditions, score, summary
from edgeser_export.multicorpus import CORPORA, HEAD, features, load_corpus

RECIPE = Recipe("voiced", CORPORA, COPIES, "mlp", HEAD)
COUNTS = (0, 2, 4, 6)

_state: dict[str, Any] = {}


def warm(job: tuple[str, int, str]) -> str:
    """Compute one feature cache file (a worker: its own recognizer, one thread): ``(corpus, copies, condition)``."""
    corpus, copies, cond = job
    rec = EmotionRecognizer.from_bundle("default", RuntimeOptions.cpu(threads=1))
    transform = conditions()[cond] if cond else None
    features(rec, load_corpus(corpus), _state["cache"], copies=copies, seed=_state["seed"] if copies else 0,
             transform=transform, tag=cond.replace(" ", "") if cond else "clean")
    return f"{corpus} {cond or f'{copies} copies'}"


def score_count(copies: int) -> dict[str, Any]:
    return score(_state["data"], _state["robot"], replace(RECIPE, copies=copies))


BABBLE_GAP, SAME_LABEL = 0.08, 0.90  # issue 24's targets for babble at 10 dB and trimmed files


def meets_targets(row: dict[str, Any]) -> bool:
    return bool(row["ravdess_folds_ua"] - row["ravdess_babble10_ua"] <= BABBLE_GAP
                and row["ravdess_trimmed_same_label"] >= SAME_LABEL)


def confirmation(rows: dict[str, Any]) -> dict[str, Any]:
    """The second draw's rule (the module's note): does 6 copies replace 2?"""
    two, six = rows["2 copies"], rows["6 copies"]
    held = {"6 copies meet both targets": meets_targets(six), "2 copies do not": not meets_targets(two),
            "LOCO mean within 1 point": six["loco_mean_ua"] >= two["loco_mean_ua"] - 0.01,
            "score within 1 point": six["score"] >= two["score"] - 0.01}
    return {"conditions": held, "six_replaces_two": all(held.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("runs/generalisation"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/augmentation_choice.json"))
    ap.add_argument("--jobs", type=int, default=1, help="feature files, then variants, computed at once")
    ap.add_argument("--seed", type=int, default=0, help="which draw of augmented copies (0: the first run's)")
    ap.add_argument("--counts", default=",".join(map(str, COUNTS)), help="copies per utterance, comma-separated")
    args = ap.parse_args()
    counts = tuple(int(k) for k in args.counts.split(","))
    cache = _state["cache"] = args.work / "cache"
    _state["seed"] = args.seed
    if args.jobs > 1:
        os.environ["OMP_NUM_THREADS"] = "1"
    jobs = [(c, k, "") for k in sorted(set(counts) | {0}, reverse=True) for c in ("turev", "ravdess", "emodb")]
    jobs += [("ravdess", 0, cond) for cond in ROBOT]
    fork = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=fork) as pool:
        for done in pool.map(warm, jobs):
            print(f"features: {done}", flush=True)

    rec = EmotionRecognizer.from_bundle("default", RuntimeOptions.cpu(threads=1))
    data = _state["data"] = Corpora(rec, cache, seed=args.seed)
    for c in CORPORA:
        for k in counts:
            if k:
                data.augmented(c, k)
    _state["robot"] = robot_conditions(rec, data, cache, RECIPE.mask)
    if args.jobs > 1:
        import torch

        torch.set_num_threads(1)
    rows: dict[str, Any] = {}
    with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=fork) as pool:
        for k, row in zip(counts, pool.map(score_count, counts), strict=True):
            rows[f"{k} copies"] = row
            print(f"{k} copies: {summary(row)}", flush=True)
    extra = {"seed": args.seed}
    if {"2 copies", "6 copies"} <= set(rows) and args.seed != 0:
        extra["confirmation"] = confirmation(rows)
        print(f"confirmation: {extra['confirmation']}")
    choose_and_write(args.out, RECIPE, rec.speech_sha256, rows, f"{COPIES} copies", "count", extra)

if __name__ == "__main__":
    main()
