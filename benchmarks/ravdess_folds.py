"""The default model's recipe over all five RAVDESS actor folds, against eGeMAPS + logistic regression.

One split of 4 test actors (112 utterances) cannot resolve a few points of UA (``benchmarks.ravdess_ablation``
gives its intervals), and the speech encoder is trained with emotion labels, so the usual actor folds need one
encoder per fold. Train them with the default model's recipe, one per held-out block of four actors:

    python -m export.train_encoder --holdout 1-4 --epochs 16 --perturb --out runs/folds/fold-1    # ... 4
    python -m benchmarks.ravdess_folds --fold 1=runs/folds/fold-1/encoder ... \\
        --fold 5=runs/default/encoder-bundle --text-bundle runs/default/encoder-bundle \\
        --out benchmarks/results/ravdess_folds.json

A fold is a ``Wav2Vec2ForCTC`` folder (exported to a speech-only bundle first) or a bundle (the shipped
encoder was trained on actors 01-16 by the same command: fold 5). On each fold, the default model's two
configurations are trained on the 16 other actors, five seeds averaged, as ``export.default_model`` trains
them: ``speech: frames`` (the shipped head) and ``fusion: frames, early + late with text``. eGeMAPS + LR is
trained on the same actors (global z-scores from them; needs openSMILE, ``pip install -e '.[bench]'``).
Reported: UA/WA per fold (mean ± std, as the baseline's benchmark reports it), UA/WA of all 560 utterances'
predictions pooled, and stratified paired bootstraps of the pooled UA differences (95% intervals).

Also, both with per-speaker normalisation (each actor's frames, or eGeMAPS functionals, z-scored with that
actor's own statistics, test actors included): this uses unlabelled audio of the test speaker, which a
runtime would need as enrolled speaker statistics; edgeser does not offer that yet, so these rows only say
whether it would be worth offering.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.egemaps_baseline import egemaps, fit_predict, per_speaker
from benchmarks.stats import interval, paired_bootstrap_ua
from edgeser import EmotionRecognizer
from edgeser.datasets import load_ravdess
from edgeser.metrics import confusion_matrix, unweighted_accuracy, weighted_accuracy
from export.default_model import DATA, TRAIN, VARIANTS
from export.features import compute
from export.model import FusionConfig
from export.train import Features, predict, train_ensemble

ROWS = ("speech: frames", "fusion: frames, early + late with text")
PER_SPEAKER = "speech: frames, per-speaker normalised"
BASELINES = ("eGeMAPS + LR", "eGeMAPS + LR, per-speaker normalised")


def speaker_normalised(items: list[Features], groups: np.ndarray) -> list[Features]:
    """Each group's frames z-scored (per dimension) with the mean and std of all that group's frames."""
    out = [dict(it) for it in items]
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        frames = np.concatenate([items[i]["frame"] for i in idx])
        mu, sd = frames.mean(0), frames.std(0) + 1e-5
        for i in idx:
            out[i]["frame"] = ((items[i]["frame"] - mu) / sd).astype(np.float32)
    return out


def fold_bundle(spec: str, work: Path) -> tuple[int, Path]:
    """``K=PATH`` → (K, a bundle): PATH itself when it is a bundle, else PATH's encoder exported to ``work``."""
    k, _, path = spec.partition("=")
    if not k.isdigit() or not path:
        raise SystemExit(f"--fold takes K=PATH, got {spec!r}")
    src = Path(path)
    if (src / "bundle.json").is_file():
        return int(k), src
    out = work / f"fold-{k}-bundle"
    if not (out / "bundle.json").is_file():
        from export.pipeline import export_bundle
        from export.sources import load_speech

        export_bundle(out, speech=load_speech(src), overwrite=True, progress=print)
    return int(k), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fold", action="append", required=True, metavar="K=PATH",
                    help="fold K (actors 4K-3..4K held out): its encoder folder or bundle; repeat for each fold")
    ap.add_argument("--text-bundle", type=Path, required=True, help="a bundle with the text encoder (MiniLM)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--work", type=Path, default=Path("runs/folds"), help="exported bundles and feature caches")
    ap.add_argument("--egemaps-cache", type=Path, default=Path("runs/egemaps.npy"))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    folds = dict(sorted(fold_bundle(spec, args.work) for spec in args.fold))
    ds = load_ravdess(DATA)
    labels = ds.label_ids()
    groups = np.array([u.group for u in ds.utterances])
    actor_folds = ds.folds(5)  # the baseline benchmark's folds: actors 01-04, 05-08, ...
    text_rec = EmotionRecognizer.from_bundle(args.text_bundle)
    text = compute(text_rec, ds, (), True, args.work / "cache")
    if text.failures or len(text.items) != len(ds):
        raise SystemExit(f"text features failed: {text.failures}")
    x = egemaps(ds, args.egemaps_cache)
    x_speaker = per_speaker(x, groups)
    pooled: dict[str, np.ndarray] = {name: np.full(len(ds), -1) for name in (*ROWS, PER_SPEAKER, *BASELINES)}
    per_fold: list[dict[str, Any]] = []
    for k, bundle in folds.items():
        tr, te = actor_folds[k - 1]
        held = sorted(set(groups[te].tolist()))
        rec = EmotionRecognizer.from_bundle(bundle)
        frames = compute(rec, ds, ("frame",), False, args.work / "cache")
        if frames.failures or len(frames.items) != len(ds):
            raise SystemExit(f"fold {k}: frame features failed: {frames.failures}")
        items: list[Features] = [{**f, **t} for f, t in zip(frames.items, text.items, strict=True)]
        fold: dict[str, Any] = {"fold": k, "held_out": held, "bundle": str(bundle)}
        normalised = speaker_normalised(items, groups)
        for name, source, variant in ((ROWS[0], items, ROWS[0]), (ROWS[1], items, ROWS[1]),
                                      (PER_SPEAKER, normalised, ROWS[0])):
            config = FusionConfig(speech_dim=rec.speech.hidden_size, text_dim=text_rec.bundle.manifest.text.hidden_size,  # type: ignore[union-attr]
                                  num_classes=len(ds.labels), labels=ds.labels, **VARIANTS[variant])
            keep = [*config.levels, *(["text"] if config.use_text else [])]
            model = train_ensemble(config, [{n: source[i][n] for n in keep} for i in tr], labels[tr],
                                   replace(TRAIN, seeds=args.seeds))
            pooled[name][te] = predict(model, [{n: source[i][n] for n in keep} for i in te]).argmax(1)
        pooled[BASELINES[0]][te] = fit_predict(x, labels, tr, te)
        pooled[BASELINES[1]][te] = fit_predict(x_speaker, labels, tr, te, normalise=False)
        for name, pred in pooled.items():
            cm = confusion_matrix(labels[te], pred[te], len(ds.labels))
            fold[name] = {"ua": unweighted_accuracy(cm), "wa": weighted_accuracy(cm)}
        per_fold.append(fold)
        print(f"fold {k} ({held[0]}-{held[-1]}): " + "; ".join(f"{n} UA {100 * fold[n]['ua']:.1f}" for n in pooled))
    scored = np.flatnonzero(pooled[ROWS[0]] >= 0)
    truth = labels[scored]
    summary: dict[str, Any] = {}
    for name, pred in pooled.items():
        cm = confusion_matrix(truth, pred[scored], len(ds.labels))
        uas = [f[name]["ua"] for f in per_fold]
        was = [f[name]["wa"] for f in per_fold]
        summary[name] = {"ua_mean": float(np.mean(uas)), "ua_std": float(np.std(uas)), "wa_mean": float(np.mean(was)),
                         "pooled_ua": unweighted_accuracy(cm), "pooled_wa": weighted_accuracy(cm),
                         "confusion": cm.tolist()}
    comparisons = {
        "speech frames minus eGeMAPS": paired_bootstrap_ua(truth, pooled[ROWS[0]][scored],
                                                           pooled["eGeMAPS + LR"][scored], len(ds.labels)),
        "fused minus speech frames": paired_bootstrap_ua(truth, pooled[ROWS[1]][scored], pooled[ROWS[0]][scored],
                                                         len(ds.labels)),
        "per-speaker: speech frames minus eGeMAPS": paired_bootstrap_ua(
            truth, pooled[PER_SPEAKER][scored], pooled[BASELINES[1]][scored], len(ds.labels)),
    }
    for name, s in summary.items():
        print(f"{name}: UA {100 * s['ua_mean']:.1f} ± {100 * s['ua_std']:.1f} over {len(per_fold)} folds; "
              f"pooled UA {100 * s['pooled_ua']:.1f}, WA {100 * s['pooled_wa']:.1f}")
    for name, c in comparisons.items():
        print(f"{name}: {interval(c)}")
    result = {"protocol": "\n\n".join(__doc__.split("\n\n")[3:5]), "folds": per_fold, "utterances": int(scored.size),
              "summary": summary, "comparisons": comparisons, "truth": truth.tolist(),
              "predictions": {n: p[scored].tolist() for n, p in pooled.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
