"""Fine-tune the block the default reads (Whisper base, block 3) on the emotion corpora, or keep it frozen.

    edgeser export --speech whisper-base --layers 2,3 --tolerance 5e-3 --out runs/base-l23
    python -m edgeser_benchmarks.finetune_choice --bundle runs/base-l23 --work runs/generalisation --jobs 2 \\
        --out benchmarks/results/finetune_choice.json

The recipe is the default's (voiced frames; RAVDESS + EmoDB + TurEV balanced by corpus and class; clean plus the
same two augmented copies of each training utterance; the shipped head). Only block 3 differs: frozen, as shipped,
or fine-tuned (:mod:`edgeser_export.finetune`, settings fixed before the run) on each part's training utterances
alone. The frames entering block 3 come from the graph ``--bundle`` (exposing layers 2 and 3), through the runtime
(silero-vad's speech span and voiced frames), cached in ``--work``; block 3 then runs in torch (its statistics
match the graph's layer 3 to the float16 cache's rounding: the result file records the difference).

Each part trains its own block and head, never on what it scores: leave-one-corpus-out (each corpus scored by a
block and head trained on the two others) and RAVDESS five actor folds (trained on the other 16 actors plus EmoDB
and TurEV; scored clean, with babble at 10 dB SNR and trimmed of silence). Rows are scored as
:mod:`edgeser_benchmarks.head_choice` scores heads, with paired-bootstrap intervals against the frozen block.

Rule, fixed before the run: the same score (mean of LOCO mean UA, RAVDESS fold UA and babble-10-dB UA); the frozen
block stays unless fine-tuning beats it by more than 1 point. A fine-tuned block that wins is a candidate, not a
new default: shipping it means exporting a graph with its weights and running the whole protocol on it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgeser import EmotionRecognizer, RuntimeOptions
from edgeser.datasets import Dataset
from edgeser.model.bundle import DEFAULT_LABELS
from edgeser_benchmarks.generalisation import (
    COPIES,
    Recipe,
    conditions,
    copy_rows,
    speaker_folds,
)
from edgeser_benchmarks.head_choice import ROBOT, choose_and_write, scored_row, summary, ua
from edgeser_benchmarks.stats import paired_bootstrap_ua
from edgeser_export.finetune import FinetuneConfig, Frames, finetune, frame_features, voiced_stats, whisper_block
from edgeser_export.multicorpus import CORPORA, HEAD, balanced_weights, fit_mlp, load_corpus, mlp_log_probs

RECIPE = Recipe("voiced", CORPORA, COPIES, "mlp", HEAD)
CONFIG = FinetuneConfig()
VARIANTS: dict[str, FinetuneConfig | None] = {"block 3 frozen (the default)": None, "block 3 fine-tuned": CONFIG}
SHIPPED = next(iter(VARIANTS))
Part = tuple[str, str]  # ("loco", corpus) or ("fold", "0".."4")


class Data:
    """Each corpus's labels, speaker groups and frames (clean, augmented copies, RAVDESS's robot conditions), and
    the frozen block's statistics of all of them."""

    def __init__(self, rec: EmotionRecognizer, cache: Path) -> None:
        self.ds = {c: load_corpus(c) for c in CORPORA}
        self.y = {c: ds.label_ids() for c, ds in self.ds.items()}
        self.groups = {c: np.array([u.group for u in ds.utterances]) for c, ds in self.ds.items()}
        self.clean = {c: frame_features(rec, ds, cache) for c, ds in self.ds.items()}
        self.copies = {c: frame_features(rec, ds, cache, copies=COPIES) for c, ds in self.ds.items()}
        every = conditions()
        self.robot = {cond: frame_features(rec, self.ds["ravdess"], cache, transform=every[cond],
                                           tag=cond.replace(" ", "")) for cond in ROBOT}
        self.folds = speaker_folds(self, "ravdess", 5)
        self.frozen: dict[str, np.ndarray] = {}

    def sets(self) -> dict[str, Frames]:
        """Every frame set by name: ``clean:<corpus>``, ``copies:<corpus>``, ``robot:<condition>``."""
        return ({f"clean:{c}": f for c, f in self.clean.items()} | {f"copies:{c}": f for c, f in self.copies.items()}
                | {f"robot:{k}": f for k, f in self.robot.items()})

    def training(self, part: Part) -> tuple[list[tuple[str, np.ndarray]], np.ndarray, np.ndarray, np.ndarray]:
        """A part's training rows: ``(set name, rows)`` pairs (clean rows, then their copies), labels, weights."""
        kind, which = part
        if kind == "loco":
            parts = [(c, np.arange(len(self.y[c]))) for c in CORPORA if c != which]
        else:
            test = self.folds[int(which)]
            parts = [("ravdess", np.setdiff1d(np.arange(len(self.y["ravdess"])), test))]
            parts += [(c, np.arange(len(self.y[c]))) for c in CORPORA if c != "ravdess"]
        rows, ys, corpus = [], [], []
        for c, idx in parts:
            copies = copy_rows(idx, COPIES)
            rows += [(f"clean:{c}", idx), (f"copies:{c}", copies)]
            ys += [self.y[c][idx], np.repeat(self.y[c][idx], COPIES)]
            corpus += [c] * (idx.size + copies.size)
        y = np.concatenate(ys)
        return rows, y, balanced_weights(corpus, y), np.array(corpus)

    def scored(self, part: Part) -> dict[str, tuple[str, np.ndarray]]:
        """What a part scores: name -> (set name, rows)."""
        kind, which = part
        if kind == "loco":
            return {which: (f"clean:{which}", np.arange(len(self.y[which])))}
        test = self.folds[int(which)]
        return {"ravdess": ("clean:ravdess", test)} | {cond: (f"robot:{cond}", test) for cond in ROBOT}


PARTS: list[Part] = [("loco", c) for c in CORPORA] + [("fold", str(k)) for k in range(5)]
_state: dict[str, Any] = {}


def run_part(job: tuple[str, Part]) -> tuple[str, Part, dict[str, np.ndarray], float]:
    """One variant on one part: its block (frozen or fine-tuned on the part's training rows), the shipped head on
    that block's statistics, and the log-probabilities of what the part scores; with the seconds it took."""
    variant, part = job
    data: Data = _state["data"]
    sets = data.sets()
    t0 = time.perf_counter()
    rows, y, w, _ = data.training(part)
    frozen = np.concatenate([data.frozen[name][idx] for name, idx in rows])
    config = VARIANTS[variant]
    if config is None:
        train_x = frozen
        stats = {k: data.frozen[name][idx] for k, (name, idx) in data.scored(part).items()}
    else:
        frames = Frames.join([sets[name].take(idx) for name, idx in rows])
        block = finetune(_state["block"], frames, y, w, len(DEFAULT_LABELS), config, start=frozen,
                         description=f"fine-tuning block 3 ({part[0]} {part[1]})")
        train_x = voiced_stats(block, frames)
        stats = {k: voiced_stats(block, sets[name].take(idx)) for k, (name, idx) in data.scored(part).items()}
    head = fit_mlp(train_x, y, w, RECIPE.spec)
    return variant, part, {k: mlp_log_probs(head, s) for k, s in stats.items()}, time.perf_counter() - t0


def row(data: Data, lp: dict[Part, dict[str, np.ndarray]]) -> dict[str, Any]:
    """A variant's row from its parts' log-probabilities, as :func:`edgeser_benchmarks.head_choice.score` writes it."""
    loco_lp = {c: lp["loco", c][c] for c in CORPORA}
    n = len(data.y["ravdess"])
    folds = {cond: np.zeros((n, len(DEFAULT_LABELS))) for cond in ("ravdess", *ROBOT)}
    for k, test in enumerate(data.folds):
        for cond in folds:
            folds[cond][test] = lp["fold", str(k)][cond]
    y = data.y["ravdess"]
    out = scored_row(data, loco_lp, folds["ravdess"], {cond: folds[cond] for cond in ROBOT})
    out["ravdess_fold_ua_each"] = [ua(y[t], folds["ravdess"][t]) for t in data.folds]
    out["predictions"] = {"loco": {c: loco_lp[c].argmax(1) for c in CORPORA},
                          "folds": {c: f.argmax(1) for c, f in folds.items()}}
    return out


def against(data: Data, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Paired-bootstrap UA differences (95%) of row ``a`` minus row ``b``: LOCO per corpus, and the RAVDESS folds
    clean and under each robot condition."""
    pa, pb = a["predictions"], b["predictions"]
    out = {f"loco {c}": paired_bootstrap_ua(data.y[c], pa["loco"][c], pb["loco"][c], len(DEFAULT_LABELS))
           for c in CORPORA}
    for cond in pa["folds"]:
        out[f"folds {cond}"] = paired_bootstrap_ua(data.y["ravdess"], pa["folds"][cond], pb["folds"][cond],
                                                   len(DEFAULT_LABELS))
    return out


def run_variants(run: Callable[[tuple[str, Part]], tuple[str, Part, dict[str, np.ndarray], float]],
                 variants: list[str], data: Data, reference: str, versus: str, jobs: int) -> dict[str, dict[str, Any]]:
    """Every variant on every part (``run``, in ``jobs`` forked workers, the last variant first: the longest jobs),
    then each variant's :func:`row`, its paired differences from ``reference`` under ``versus``, and the seconds each
    part took."""
    lp: dict[str, dict[Part, dict[str, np.ndarray]]] = {v: {} for v in variants}
    seconds: dict[str, dict[str, float]] = {v: {} for v in variants}
    work = [(v, p) for v in reversed(variants) for p in PARTS]
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        for variant, part, out, s in pool.map(run, work):
            lp[variant][part] = out
            seconds[variant][" ".join(part)] = round(s, 1)
            print(f"{variant}, {' '.join(part)}: {s:.0f} s", flush=True)
    rows = {v: row(data, lp[v]) for v in variants}
    for name, r in rows.items():
        if name != reference:
            r[versus] = against(data, r, rows[reference])
        print(f"{name}: {summary(r)}", flush=True)
        r["seconds_per_part"] = seconds[name]
        r["predictions"] = {k: {c: v.tolist() for c, v in d.items()} for k, d in r["predictions"].items()}
    return rows


def parity(rec: EmotionRecognizer, data: Data) -> dict[str, float]:
    """How far the torch block's statistics are from the graph's own layer 3, on the first 8 RAVDESS files."""
    from edgeser_export.multicorpus import pooled, waves

    ours = data.frozen["clean:ravdess"][:8]
    first = waves(Dataset("first", data.ds["ravdess"].utterances[:8]))
    theirs = np.stack([pooled(rec, w, layers=(1,))[0][1] for w in first])
    return {"max_abs": float(np.abs(ours - theirs).max()), "max_ref": float(np.abs(theirs).max()), "files": 8}


def warm(job: tuple[str, str, int, str]) -> str:
    """Compute one frame cache file (a worker: its own recognizer, one thread)."""
    bundle, corpus, copies, cond = job
    rec = EmotionRecognizer.from_bundle(bundle, RuntimeOptions.cpu(threads=1))
    frame_features(rec, load_corpus(corpus), _state["cache"], copies=copies,
                   transform=conditions()[cond] if cond else None, tag=cond.replace(" ", "") if cond else "clean")
    return f"{corpus} {cond or f'{copies} copies'}"


def layers_2_and_3(bundle: Path) -> EmotionRecognizer:
    """The recognizer of ``bundle``, which must expose layers 2 and 3 (the frames entering block 3, and its own)."""
    rec = EmotionRecognizer.from_bundle(bundle, RuntimeOptions.cpu(threads=1))
    if list(rec.speech.exposed_layers) != [2, 3]:
        raise SystemExit(f"--bundle {bundle}: exposes layers {list(rec.speech.exposed_layers)}, expected 2 and 3; "
                         "export it with `edgeser export --speech whisper-base --layers 2,3 --tolerance 5e-3`")
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True,
                    help="a speech graph of the default's encoder exposing layers 2 and 3 (edgeser export "
                         "--speech whisper-base --layers 2,3)")
    ap.add_argument("--work", type=Path, default=Path("runs/generalisation"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/finetune_choice.json"))
    ap.add_argument("--jobs", type=int, default=1, help="frame files, then parts, computed at once (one thread each)")
    args = ap.parse_args()
    rec = layers_2_and_3(args.bundle)
    cache = _state["cache"] = args.work / "cache"
    if args.jobs > 1:
        os.environ["OMP_NUM_THREADS"] = "1"
    jobs = [(str(args.bundle), c, k, "") for k in (COPIES, 0) for c in ("turev", "ravdess", "emodb")]
    jobs += [(str(args.bundle), "ravdess", 0, cond) for cond in ROBOT]
    fork = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=fork) as pool:
        for done in pool.map(warm, jobs):
            print(f"frames: {done}", flush=True)

    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.jobs))
    data = _state["data"] = Data(rec, cache)
    block = _state["block"] = whisper_block()
    data.frozen = {name: voiced_stats(block, f) for name, f in data.sets().items()}
    check = parity(rec, data)
    print(f"torch block 3 against the graph's layer 3: max |difference| {check['max_abs']:.1e}", flush=True)
    if args.jobs > 1:
        torch.set_num_threads(1)
    rows = run_variants(run_part, list(VARIANTS), data, SHIPPED, "minus_frozen", args.jobs)
    choose_and_write(args.out, RECIPE, rec.speech_sha256, rows, SHIPPED, "block",
                     {"finetune": asdict(CONFIG), "parity": check, "bundle": str(args.bundle),
                      "folds": [f.tolist() for f in data.folds]})


if __name__ == "__main__":
    main()
