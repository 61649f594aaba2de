"""Blocks read together under the shipped recipe: the default (Whisper base, block 3) against a graph exposing
several blocks whose statistics the head reads concatenated (such as blocks 3 and 4).

    edgeser export --speech whisper-base --layers 3,4 --tolerance 5e-3 --out runs/base-l34
    python -m edgeser_benchmarks.stack_choice --bundle "blocks 3+4=runs/base-l34" --work runs/generalisation \\
        --jobs 2 --out benchmarks/results/stack_choice.json

``encoder_choice --mlp`` chose blocks 3+4 over block 3 on the clean recipe (``encoder_layers.json``). This asks the
same of the recipe the default ships: voiced frames, RAVDESS + EmoDB + TurEV balanced by corpus and class, the
shipped head, two augmented copies of each training utterance (the same draw, seed 0, as the default's row: the
same audio, encoded by each graph). Each reading is scored as :mod:`edgeser_benchmarks.head_choice` scores heads:
leave-one-corpus-out UA and calibration; RAVDESS five actor folds clean, with babble at 10 dB SNR, and trimmed.

Rule, fixed before the run: the same score (mean of LOCO mean UA, RAVDESS fold UA and babble-10-dB UA); the
default's block 3 stays unless a stack beats it by more than 1 point. A stack that wins is a candidate, not a new
default: it costs its extra blocks' time (``encoder_speed-base34.json``) and is shipped only after the whole
protocol (:mod:`edgeser_benchmarks.generalisation`) has run on it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
from pathlib import Path
from typing import Any

from edgeser import EmotionRecognizer, RuntimeOptions
from edgeser_benchmarks.generalisation import COPIES, Corpora, Recipe, conditions
from edgeser_benchmarks.head_choice import ROBOT, choose_and_write, robot_conditions, score, summary
from edgeser_export.multicorpus import CORPORA, HEAD, features, load_corpus

RECIPE = Recipe("voiced", CORPORA, COPIES, "mlp", HEAD)
SHIPPED = "block 3 (the default)"

_state: dict[str, Any] = {}


def readings(bundle: str, rec: EmotionRecognizer) -> tuple[int, ...]:
    """The exposed layers the statistics read: the default's last (its head's reading, and its cache names), or
    every layer a candidate bundle exposes."""
    return (-1,) if bundle == "default" else tuple(range(len(rec.speech.exposed_layers)))


def warm(job: tuple[str, str, int, str]) -> str:
    """Compute one feature cache file (a worker: its own recognizer, one thread)."""
    bundle, corpus, copies, cond = job
    rec = EmotionRecognizer.from_bundle(bundle, RuntimeOptions.cpu(threads=1))
    features(rec, load_corpus(corpus), _state["cache"], copies=copies, transform=conditions()[cond] if cond else None,
             tag=cond.replace(" ", "") if cond else "clean", layers=readings(bundle, rec))
    return f"{bundle}: {corpus} {cond or f'{copies} copies'}"


def score_reading(name: str) -> dict[str, Any]:
    data, robot = _state["data"][name]
    return score(data, robot, RECIPE)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", action="append", required=True, metavar="NAME=BUNDLE",
                    help="a speech graph exposing the blocks to read together (edgeser export --layers 3,4)")
    ap.add_argument("--work", type=Path, default=Path("runs/generalisation"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/stack_choice.json"))
    ap.add_argument("--jobs", type=int, default=1, help="feature files, then readings, computed at once")
    args = ap.parse_args()
    bundles = {SHIPPED: "default"}
    for value in args.bundle:
        name, sep, path = value.partition("=")
        if not sep or not Path(path).is_dir():
            raise SystemExit(f"--bundle {value}: expected NAME=BUNDLE, a bundle folder")
        bundles[name] = path
    cache = _state["cache"] = args.work / "cache"
    if args.jobs > 1:
        os.environ["OMP_NUM_THREADS"] = "1"
    jobs = [(b, c, k, "") for b in bundles.values() for k in (COPIES, 0) for c in ("turev", "ravdess", "emodb")]
    jobs += [(b, "ravdess", 0, cond) for b in bundles.values() for cond in ROBOT]
    fork = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=fork) as pool:
        for done in pool.map(warm, jobs):
            print(f"features: {done}", flush=True)

    _state["data"] = {}
    layers_read = {}
    for name, bundle in bundles.items():
        rec = EmotionRecognizer.from_bundle(bundle, RuntimeOptions.cpu(threads=1))
        layers = readings(bundle, rec)
        layers_read[name] = [rec.speech.exposed_layers[k] for k in layers]
        data = Corpora(rec, cache, layers=layers)
        for c in CORPORA:
            data.augmented(c, COPIES)
        _state["data"][name] = (data, robot_conditions(rec, data, cache, RECIPE.mask))
    if args.jobs > 1:
        import torch

        torch.set_num_threads(1)
    rows: dict[str, Any] = {}
    with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=fork) as pool:
        for name, row in zip(bundles, pool.map(score_reading, bundles), strict=True):
            rows[name] = {**row, "blocks": layers_read[name], "bundle": bundles[name]}
            print(f"{name}: {summary(row)}", flush=True)
    default_sha = EmotionRecognizer.from_bundle("default").speech_sha256
    choose_and_write(args.out, RECIPE, default_sha, rows, SHIPPED, "reading", {"stack_rule": __doc__.split("\n\n")[3]})


if __name__ == "__main__":
    main()
