"""Edge variants of the default over the five actor folds: what INT8, FP16 or a smaller encoder cost in accuracy
and buy in speed.

On each fold the default's head (``speech: frames``, ``--seeds`` seeds averaged) is trained on the FP32 encoder's
frames of the 16 training actors, as the shipped head is, and the 4 held-out actors are scored with the frames of
each variant's encoder (``edgeser quantize ... --graphs speech``): the accuracy a user gets by swapping in the
variant's speech graph under the shipped head. A smaller encoder (``--student``, e.g. fewer Whisper blocks) has
other features, so its head is trained on its own frames of the same 16 actors. Reported per variant: pooled UA/WA
over the 560 utterances, the stratified paired bootstrap of its UA minus FP32's, and in the same run the speech
graph's latency on 1, 4 and 10 s of speech (1 thread, interleaved rounds, ratio to FP32). eGeMAPS + LR on the same
folds is the baseline (from ``edgeser_benchmarks.studies.egemaps_baseline``'s cache, or openSMILE). ``edgeser bench
--folds`` reads this file.

    python -m edgeser_benchmarks.studies.precision_folds --variant default=default \\
        --variant int8-dynamic=runs/default-int8dyn --variant int8-static=runs/default-int8 \\
        --variant fp16=runs/default-fp16 \\
        --student "fewer layers: block 1=runs/tiny-l1" \\
        --student "fewer frames: 25/s, no training=runs/pool2-l2/bundle" \\
        --student "fewer frames: 25/s, no training, static INT8=runs/pool2-int8" \\
        --egemaps-cache runs/cache/egemaps.npy --work runs/folds-tiny \
        --out benchmarks/results/precision_folds.json

(``runs/tiny-l1``: ``edgeser export --speech whisper-tiny.en --layers 1``; ``runs/pool2-l2``: ``python -m
edgeser_export.distill_whisper --init whisper-tiny.en --blocks 2 --pool 2 --epochs 0 --out runs/pool2-l2``
then ``edgeser export --speech runs/pool2-l2/encoder --layers 2 --out runs/pool2-l2/bundle``; ``runs/pool2-int8``:
``edgeser quantize runs/pool2-l2/bundle --precision int8 --graphs speech --calibration ../shared/data/ravdess
--calibration-size 32``.)
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeser import EmotionRecognizer
from edgeser.datasets import load_ravdess
from edgeser.metrics import confusion_matrix, unweighted_accuracy, weighted_accuracy
from edgeser_benchmarks.provenance import write_result
from edgeser_benchmarks.stats import interval, paired_bootstrap_ua
from edgeser_benchmarks.studies.egemaps_baseline import egemaps, fit_predict
from edgeser_benchmarks.suite import machine
from edgeser_benchmarks.timing import encoder_latency
from edgeser_export.default_model import DATA, TRAIN, VARIANTS
from edgeser_export.features import compute
from edgeser_export.model import FusionConfig
from edgeser_export.train import predict, train_ensemble

ROW = "speech: frames"
EGEMAPS = "eGeMAPS + LR (speech)"
ACCURACY = "5 actor folds (560)"
"""How the accuracy was measured, in the words ``edgeser bench`` puts in its table."""


def report(rows: dict[str, Any], latency: dict[str, Any], reference: str) -> None:
    for name, r in rows.items():
        print(f"{name}: pooled UA {100 * r['pooled_ua']:.1f} WA {100 * r['pooled_wa']:.1f}, minus {reference} "
              f"{interval(r['minus_fp32'])}; 4 s: {latency['4s'][name]['p50_ms']:.1f} ms "
              f"(x{latency['4s'][name]['ratio_to_fp32']['median']:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", action="append", required=True, metavar="NAME=BUNDLE",
                    help="the first is the FP32 reference the heads are trained on")
    ap.add_argument("--student", action="append", default=[], metavar="NAME=BUNDLE",
                    help="a smaller encoder: its head is trained on its own frames (repeat)")
    ap.add_argument("--egemaps-cache", type=Path, default=Path("runs/cache/egemaps.npy"))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--work", type=Path, default=Path("runs/folds"))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    variants = dict(spec.split("=", 1) for spec in args.variant)
    students = dict(spec.split("=", 1) for spec in args.student)
    if set(students) & set(variants):
        raise SystemExit(f"--student names repeat --variant names: {sorted(set(students) & set(variants))}")
    ds = load_ravdess(DATA)
    labels = ds.label_ids()
    feats: dict[str, list[np.ndarray]] = {}
    info: dict[str, Any] = {}
    for name, path in {**variants, **students}.items():
        rec = EmotionRecognizer.from_bundle(path)
        fs = compute(rec, ds, ("frame",), False, args.work / "cache")
        if fs.failures or len(fs.items) != len(ds):
            raise SystemExit(f"{name}: frame features failed: {fs.failures}")
        feats[name] = [it["frame"] for it in fs.items]
        q = rec.speech.provenance.get("quantization", {})
        info[name] = {"bundle": path, "speech_mb": round(rec.bundle.manifest.files[rec.speech.graph].bytes / 1e6, 1),
                      "precision": q.get("precision", "fp32"), "kept_float": q.get("kept_float", []),
                      "agreement_with_parent": q.get("agreement_with_parent"), "guard": q.get("guard")}
    reference = next(iter(variants))
    def head(name: str, tr: np.ndarray) -> Any:
        config = FusionConfig(speech_dim=feats[name][0].shape[1], text_dim=384, num_classes=len(ds.labels),
                              labels=ds.labels, **VARIANTS[ROW])
        return train_ensemble(config, [{"frame": feats[name][i]} for i in tr], labels[tr],
                              replace(TRAIN, seeds=args.seeds))

    egemaps_x = egemaps(ds, args.egemaps_cache)
    pooled = {name: np.full(len(ds), -1) for name in (*variants, *students, EGEMAPS)}
    for k, (tr, te) in enumerate(ds.folds(5), start=1):
        model = head(reference, tr)
        for name in variants:
            pooled[name][te] = predict(model, [{"frame": feats[name][i]} for i in te]).argmax(1)
        for name in students:
            pooled[name][te] = predict(head(name, tr), [{"frame": feats[name][i]} for i in te]).argmax(1)
        pooled[EGEMAPS][te] = fit_predict(egemaps_x, labels, tr, te)
        uas = {n: unweighted_accuracy(confusion_matrix(labels[te], p[te], 4)) for n, p in pooled.items()}
        print(f"fold {k}: " + "; ".join(f"{n} UA {100 * ua:.1f}" for n, ua in uas.items()))
    rows: dict[str, Any] = {}
    baselines: dict[str, Any] = {}
    for name, pred in pooled.items():
        cm = confusion_matrix(labels, pred, 4)
        if name == EGEMAPS:
            baselines[name] = {"pooled_ua": unweighted_accuracy(cm), "pooled_wa": weighted_accuracy(cm),
                               "minus_fp32": paired_bootstrap_ua(labels, pred, pooled[reference], 4)}
            continue
        rows[name] = {**info[name], "student": name in students, "pooled_ua": unweighted_accuracy(cm),
                      "pooled_wa": weighted_accuracy(cm),
                      "minus_fp32": paired_bootstrap_ua(labels, pred, pooled[reference], 4)}
    latency = encoder_latency({**variants, **students}, ds, reference, args.repeats)
    report(rows, latency, "FP32")
    result = {"protocol": __doc__.split("\n\n")[1], "accuracy": ACCURACY, "machine": machine(),
              "seeds": args.seeds, "row": ROW, "variants": rows, "baselines": baselines, "latency_1_thread": latency,
              "truth": labels.tolist(), "predictions": {n: p.tolist() for n, p in pooled.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
