"""Lower-precision encoders of the default, over the five actor folds: what INT8 costs in accuracy and buys in speed.

On each fold the default's head (``speech: frames``, ``--seeds`` seeds averaged) is trained on the FP32 encoder's
frames of the 16 training actors, as the shipped head is, and the 4 held-out actors are scored with the frames of
each variant's encoder (``edgeser quantize ... --graphs speech``): the accuracy a user gets by swapping in the
variant's speech graph under the shipped head. Reported per variant: pooled UA/WA over the 560 utterances, the
stratified paired bootstrap of its UA minus FP32's, and in the same run the speech graph's latency on 1, 4 and
10 s of speech (1 thread, interleaved rounds, ratio to FP32).

    python -m benchmarks.precision_folds --variant fp32=runs/tiny-l2 --variant int8-dynamic=runs/tiny-l2-int8dyn \\
        --variant int8=runs/tiny-l2-int8 --out benchmarks/results/precision_folds.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.fast_path import speech_clips
from benchmarks.stats import interval, latency_summary, paired_bootstrap_ua, time_interleaved
from benchmarks.suite import machine
from edgeser import EmotionRecognizer, RuntimeOptions
from edgeser.datasets import load_ravdess
from edgeser.metrics import confusion_matrix, unweighted_accuracy, weighted_accuracy
from export.default_model import DATA, TRAIN, VARIANTS
from export.features import compute
from export.model import FusionConfig
from export.train import predict, train_ensemble

ROW = "speech: frames"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", action="append", required=True, metavar="NAME=BUNDLE",
                    help="the first is the FP32 reference the heads are trained on")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--work", type=Path, default=Path("runs/folds"))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    variants = dict(spec.split("=", 1) for spec in args.variant)
    ds = load_ravdess(DATA)
    labels = ds.label_ids()
    feats: dict[str, list[np.ndarray]] = {}
    info: dict[str, Any] = {}
    for name, path in variants.items():
        rec = EmotionRecognizer.from_bundle(path)
        fs = compute(rec, ds, ("frame",), False, args.work / "cache")
        if fs.failures or len(fs.items) != len(ds):
            raise SystemExit(f"{name}: frame features failed: {fs.failures}")
        feats[name] = [it["frame"] for it in fs.items]
        q = rec.speech.provenance.get("quantization", {})
        info[name] = {"bundle": path, "speech_mb": round(rec.bundle.manifest.files[rec.speech.graph].bytes / 1e6, 1),
                      "precision": q.get("precision", "fp32"), "kept_float": q.get("kept_float", []),
                      "agreement_with_parent": q.get("agreement_with_parent")}
    reference = next(iter(variants))
    config = FusionConfig(speech_dim=feats[reference][0].shape[1], text_dim=384, num_classes=len(ds.labels),
                          labels=ds.labels, **VARIANTS[ROW])
    pooled = {name: np.full(len(ds), -1) for name in variants}
    for k, (tr, te) in enumerate(ds.folds(5), start=1):
        model = train_ensemble(config, [{"frame": feats[reference][i]} for i in tr], labels[tr],
                               replace(TRAIN, seeds=args.seeds))
        for name in variants:
            pooled[name][te] = predict(model, [{"frame": feats[name][i]} for i in te]).argmax(1)
        uas = {n: unweighted_accuracy(confusion_matrix(labels[te], p[te], 4)) for n, p in pooled.items()}
        print(f"fold {k}: " + "; ".join(f"{n} UA {100 * ua:.1f}" for n, ua in uas.items()))
    rows: dict[str, Any] = {}
    for name, pred in pooled.items():
        cm = confusion_matrix(labels, pred, 4)
        rows[name] = {**info[name], "pooled_ua": unweighted_accuracy(cm), "pooled_wa": weighted_accuracy(cm),
                      "minus_fp32": paired_bootstrap_ua(labels, pred, pooled[reference], 4)}
    recs = {n: EmotionRecognizer.from_bundle(p, RuntimeOptions.cpu(threads=1)) for n, p in variants.items()}
    latency: dict[str, Any] = {}
    for clip, wave in speech_clips(ds).items():
        times = time_interleaved({n: partial(r.encode, wave, sample_rate=16000) for n, r in recs.items()},
                                 args.repeats)
        latency[clip] = latency_summary(times, reference, "ratio_to_fp32")
    for name, r in rows.items():
        print(f"{name}: pooled UA {100 * r['pooled_ua']:.1f} WA {100 * r['pooled_wa']:.1f}, minus FP32 "
              f"{interval(r['minus_fp32'])}; 4 s: {latency['4s'][name]['p50_ms']:.1f} ms "
              f"(x{latency['4s'][name]['ratio_to_fp32']['median']:.2f})")
    result = {"protocol": __doc__.split("\n\n")[1], "machine": machine(), "seeds": args.seeds, "row": ROW,
              "variants": rows, "latency_1_thread": latency, "truth": labels.tolist(),
              "predictions": {n: p.tolist() for n, p in pooled.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
