"""INT8 schemes of the default model on this CPU: what each costs in accuracy on unseen speakers and corpora, what
it buys in speed, and how long the documented quantize command (docs/quantization.md) takes to make it.

Each variant is made by docs/quantization.md's command, run as a user runs it (``edgeser quantize default --precision
int8 --calibration ../shared/data/ravdess/labels.csv --out ...``, with ``--target`` set; its wall time and its guard's
verdict recorded). Accuracy: the shipped head's recipe (voiced-frame statistics, an MLP ensemble, corpora and classes
balanced; clean utterances only, no augmented copies) is trained on the FP32 encoder's features and scores the
held-out utterances with each variant's: the accuracy a user gets by swapping in the variant's speech graph. RAVDESS
five actor folds (each trained on the other 16 actors plus EmoDB and TurEV) and leave-one-corpus-out (each corpus
scored by the head trained on the other two), with the stratified paired bootstrap of each variant's UA minus FP32's.
Speed: the speech graph on 1, 4 and 10 s of speech, 1 thread, interleaved rounds, ratio to FP32.

``cpu-avx2`` (7-bit weights) cannot saturate on any x86 CPU, so its accuracy here is its accuracy on an AVX2-only
CPU; ``cpu-vnni`` measured on a CPU with VNNI says nothing of an AVX2 one (see :mod:`edgeser.system`).

    python -m edgeser_benchmarks.int8_schemes --work runs/int8 --out benchmarks/results/int8_schemes.json

``--student NAME=BUNDLE`` adds a smaller encoder (a distilled student): its features are not the default's, so
every fold's and every left-out corpus's head is trained on the student's own features of the same utterances.
With ``--no-schemes`` only the students are measured beside FP32 (write them to another ``--out``):

    python -m edgeser_benchmarks.int8_schemes --no-schemes --student "student=runs/student-libri/bundle" \
        --work runs/int8 --out benchmarks/results/students.json \
        --folds-out benchmarks/results/student_folds_now.json

A student that heard the emotion corpora must not have heard the audio it is scored on: one per RAVDESS fold and
per left-out corpus, named by ``{part}`` in its path (``fold-1`` ... ``fold-5``, ``loco-ravdess``, ``loco-emodb``,
``loco-turev``: :data:`PARTS`). Each fold and left-out corpus is then scored by its own student, with a head
trained on that student's features; its speed is ``fold-1``'s (the students share one architecture):

    python -m edgeser_benchmarks.int8_schemes --no-schemes --student "student (corpora)=runs/students/{part}/bundle" \
        --work runs/int8 --out benchmarks/results/students-corpora.json --folds-out runs/int8/student_folds.json

Calibration methods side by side on the AVX2 scheme: ``int8 cpu-avx2`` is the documented command, whose
``--method auto`` is ``dynamic`` for this target (below); ``int8 cpu-avx2, minmax`` and ``int8 cpu-avx2, percentile``
are the methods it used before (``int8_methods.json`` was measured when minmax was the default, its rows named
``int8 cpu-avx2`` for minmax and ``int8 cpu-avx2, percentile``):

    python -m edgeser_benchmarks.int8_schemes --scheme "int8 cpu-avx2" --scheme "int8 cpu-avx2, minmax" \
        --work runs/int8 --out benchmarks/results/int8_methods.json \
        --folds-out runs/int8/int8_folds_methods.json

Activation ranges found as the graph runs (``--method dynamic``: MatMul inputs quantized dynamically, convolutions
calibrated by percentile) beside percentile calibration, with the guard's fallback and without it (every node
quantized: the guard's limits lifted, so that what the fastest variant costs is measured):

    python -m edgeser_benchmarks.int8_schemes --scheme "int8 cpu-avx2, percentile" --scheme "int8 cpu-avx2, dynamic" \
        --scheme "int8 cpu-avx2, dynamic, no fallback" --work runs/int8 \
        --out benchmarks/results/int8_dynamic.json \
        --folds-out runs/int8/int8_folds_dynamic.json

It also writes the RAVDESS fold predictions in the form ``edgeser bench --folds`` reads (``--folds-out``, the FP32
row named ``default``), so the bench table scores these variants the same way.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeser import EmotionRecognizer, default
from edgeser.metrics import confusion_matrix, unweighted_accuracy, weighted_accuracy
from edgeser.model.bundle import DEFAULT_LABELS
from edgeser_benchmarks.provenance import write_result
from edgeser_benchmarks.stats import interval, paired_bootstrap_ua
from edgeser_benchmarks.timing import encoder_latency
from edgeser_export.multicorpus import CORPORA, DATA, balanced_weights, features, fit_mlp, load_corpus, mlp_log_probs

SCHEMES = {"int8 cpu-vnni": ["--precision", "int8", "--target", "cpu-vnni"],
           "int8 cpu-avx2": ["--precision", "int8", "--target", "cpu-avx2"],
           "int8 cpu-avx2, minmax": ["--precision", "int8", "--target", "cpu-avx2", "--method", "minmax"],
           "int8 cpu-avx2, percentile": ["--precision", "int8", "--target", "cpu-avx2", "--method", "percentile"],
           "int8 cpu-avx2, dynamic": ["--precision", "int8", "--target", "cpu-avx2", "--method", "dynamic"],
           "int8 cpu-avx2, dynamic, no fallback": ["--precision", "int8", "--target", "cpu-avx2", "--method",
                                                   "dynamic", "--ua-budget", "100", "--min-label-agreement", "0"],
           "int8-dynamic cpu-avx2": ["--precision", "int8-dynamic", "--target", "cpu-avx2"]}
"""The variants, as ``edgeser quantize`` options (the FP32 default is the reference)."""
FP32 = "fp32"
PARTS = (*(f"fold-{k}" for k in range(1, 6)), *(f"loco-{c}" for c in CORPORA))
"""What a ``{part}`` in a student's path stands for: the RAVDESS folds (actors 01-04, ..., 17-20, as ``main`` splits
them) and the left-out corpora, each scored by the student distilled without it."""


def student_parts(path: str) -> dict[str, Path]:
    """The bundle that scores each of :data:`PARTS` (one path for all of them unless ``path`` holds ``{part}``);
    a missing one is named."""
    parts = {part: Path(path.replace("{part}", part)) for part in PARTS}
    missing = [str(p) for p in parts.values() if not p.is_dir()]
    if missing:
        raise SystemExit(f"--student: {missing[0]} not found" + (f" (and {len(missing) - 1} more)"
                                                                 if len(missing) > 1 else ""))
    return parts


def make(name: str, options: list[str], out: Path) -> dict[str, Any]:
    """docs/quantization.md's quantize command with ``options``; its wall time, and what it printed last. A variant
    its guard refuses is recorded as refused, then made with ``--ua-budget 100`` so that what it would cost is
    measured."""
    edgeser = Path(sys.executable).parent / "edgeser"
    cmd = [str(edgeser), "quantize", "default", *options, "--calibration", str(DATA / "ravdess" / "labels.csv"),
           "--out", str(out), "--overwrite"]
    t0 = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    made = {"command": "edgeser " + " ".join(cmd[1:]).replace(str(DATA), "../shared/data"),
            "wall_s": round(seconds, 1), "log_tail": run.stderr.strip().splitlines()[-4:], "guard_passed": True}
    if run.returncode != 0 and "failed its guard" in run.stderr:
        print(f"{name}: refused by its guard in {seconds:.0f} s; made with --ua-budget 100 to measure it")
        made["guard_passed"] = False
        run = subprocess.run([*cmd, "--ua-budget", "100", "--min-label-agreement", "0"], capture_output=True,
                             text=True)
    if run.returncode != 0:
        raise SystemExit(f"{name}: {' '.join(cmd)} failed:\n{run.stderr[-2000:]}")
    print(f"{name}: quantized in {seconds:.0f} s")
    return made


def scores(truth: np.ndarray, pred: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    cm = confusion_matrix(truth, pred, len(DEFAULT_LABELS))
    return {"ua": unweighted_accuracy(cm), "wa": weighted_accuracy(cm),
            "minus_fp32": paired_bootstrap_ua(truth, pred, reference, len(DEFAULT_LABELS)),
            "label_agreement": float(np.mean(pred == reference))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("runs/int8"))
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/int8_schemes.json"))
    ap.add_argument("--folds-out", type=Path, default=Path("benchmarks/results/int8_folds.json"))
    ap.add_argument("--student", action="append", default=[], metavar="NAME=BUNDLE",
                    help="a smaller encoder (python -m edgeser_export.distill_whisper, then edgeser export): its "
                         "features differ from the default's, so each fold's head is trained on its own (repeat); "
                         "{part} in BUNDLE: one student per fold and left-out corpus (PARTS)")
    ap.add_argument("--no-schemes", action="store_true", help="only the students (and FP32)")
    ap.add_argument("--scheme", action="append", choices=list(SCHEMES), default=None,
                    help="only these variants (repeat; default: all of them)")
    args = ap.parse_args()
    bundles: dict[str, Path] = {FP32: default.resolve(default.NAME)}
    made: dict[str, Any] = {}
    chosen = {n: o for n, o in SCHEMES.items() if args.scheme is None or n in args.scheme}
    for name, options in ({} if args.no_schemes else chosen).items():
        out = args.work / name.replace(" ", "-")
        made[name] = make(name, options, out)
        bundles[name] = out
    specs = dict(spec.split("=", 1) for spec in args.student)
    students = {name: student_parts(path) for name, path in specs.items()}
    for name, path in specs.items():
        bundles[name] = students[name]["fold-1"]
        made[name] = {"student": True, **({"per_part": {k: str(p) for k, p in students[name].items()}}
                                          if "{part}" in path else {})}
    corpora = {c: load_corpus(c) for c in CORPORA}
    y = {c: ds.label_ids() for c, ds in corpora.items()}
    groups = {c: np.array([u.group for u in ds.utterances]) for c, ds in corpora.items()}
    x: dict[str, dict[str, dict[str, np.ndarray]]] = {}  # variant -> part -> corpus -> features
    for name in bundles:
        paths = students.get(name, dict.fromkeys(PARTS, bundles[name]))
        by_path: dict[Path, dict[str, np.ndarray]] = {}
        for path in dict.fromkeys(paths.values()):
            rec = EmotionRecognizer.from_bundle(path)
            by_path[path] = {c: features(rec, ds, args.work / "cache").mask("voiced") for c, ds in corpora.items()}
        x[name] = {part: by_path[path] for part, path in paths.items()}

    def head(parts: list[tuple[str, np.ndarray]], part: str, source: str = FP32) -> Callable[[np.ndarray], np.ndarray]:
        """The shipped recipe trained on ``source``'s features (FP32's, or a student's own: the one distilled for
        ``part``) of ``parts`` (corpus, utterance indices)."""
        xs = np.concatenate([x[source][part][c][i] for c, i in parts])
        ys = np.concatenate([y[c][i] for c, i in parts])
        corpus = np.concatenate([np.full(i.size, c) for c, i in parts])
        model = fit_mlp(xs, ys, balanced_weights(corpus.tolist(), ys))
        return lambda s: mlp_log_probs(model, s)

    every = {c: np.arange(len(y[c])) for c in CORPORA}
    predictions: dict[str, dict[str, np.ndarray]] = {"ravdess_folds": {}, **{f"loco_{c}": {} for c in CORPORA}}
    actors = sorted(set(groups["ravdess"].tolist()))
    folds = [np.flatnonzero(np.isin(groups["ravdess"], block)) for block in np.array_split(np.array(actors), 5)]
    fold_pred = {n: np.full(len(y["ravdess"]), -1) for n in bundles}
    for k, test in enumerate(folds, 1):
        train = np.setdiff1d(every["ravdess"], test)
        parts = [("ravdess", train)] + [(c, every[c]) for c in CORPORA if c != "ravdess"]
        part = f"fold-{k}"
        h = head(parts, part)
        for n in bundles:
            own = head(parts, part, n) if n in students else h
            fold_pred[n][test] = own(x[n][part]["ravdess"][test]).argmax(1)
        print(f"RAVDESS fold {k}/5 done")
    predictions["ravdess_folds"] = fold_pred
    for held in CORPORA:
        parts = [(c, every[c]) for c in CORPORA if c != held]
        part = f"loco-{held}"
        h = head(parts, part)
        predictions[f"loco_{held}"] = {n: (head(parts, part, n) if n in students else h)(x[n][part][held]).argmax(1)
                                       for n in bundles}
        print(f"leave-one-corpus-out {held} done")
    accuracy: dict[str, dict[str, Any]] = {}
    for protocol, preds in predictions.items():
        truth = y["ravdess" if protocol == "ravdess_folds" else protocol.removeprefix("loco_")]
        accuracy[protocol] = {n: scores(truth, p, preds[FP32]) for n, p in preds.items()}
    clips_from = corpora["ravdess"]
    latency = encoder_latency({n: str(p) for n, p in bundles.items()}, clips_from, FP32, args.repeats)
    for n in bundles:
        loco_ua = np.mean([accuracy[f"loco_{c}"][n]["ua"] for c in CORPORA])
        print(f"{n}: RAVDESS folds UA {100 * accuracy['ravdess_folds'][n]['ua']:.1f} "
              f"({interval(accuracy['ravdess_folds'][n]['minus_fp32'])}), LOCO mean {100 * loco_ua:.1f}; "
              f"4 s x{latency['4s'][n]['ratio_to_fp32']['median']:.2f}")
    write_result(args.out, {"protocol": (__doc__ or "").split("\n\n")[1].replace("\n", " "),
                            "variants": {n: {"bundle": str(p), **made.get(n, {})} for n, p in bundles.items()},
                            "accuracy": accuracy, "latency_1_thread": latency,
                            "truth": {c: y[c].tolist() for c in CORPORA},
                            "predictions": {k: {n: p.tolist() for n, p in v.items()} for k, v in predictions.items()}})
    named = {n: "default" if n == FP32 else n for n in bundles}  # as `edgeser bench --bundle default` names it
    write_result(args.folds_out, {
        "accuracy": "5 RAVDESS actor folds (560; heads also trained on EmoDB + TurEV)",
        "variants": {named[n]: {"pooled_ua": accuracy["ravdess_folds"][n]["ua"],
                                "pooled_wa": accuracy["ravdess_folds"][n]["wa"],
                                "minus_fp32": accuracy["ravdess_folds"][n]["minus_fp32"]} for n in bundles},
        "truth": y["ravdess"].tolist(), "predictions": {named[n]: fold_pred[n].tolist() for n in bundles}})


if __name__ == "__main__":
    main()
