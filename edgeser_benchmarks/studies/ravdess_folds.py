"""The default model's recipe over all five RAVDESS actor folds, against eGeMAPS + logistic regression.

One split of 4 test actors (112 utterances) cannot resolve a few points of UA
(``edgeser_benchmarks.studies.ravdess_ablation`` gives its intervals), so every figure here pools the five actor
folds (01-04 ... 17-20, 560 utterances).

A pretrained encoder that has never heard RAVDESS (the Whisper default) serves every fold as it is:

    python -m edgeser_benchmarks.studies.ravdess_folds --encoder-bundle runs/default/encoder-bundle \
        --out benchmarks/results/ravdess_folds.json

An encoder trained with emotion labels (the previous compact default) needs one encoder per fold, trained
with its recipe on the other 16 actors (``python -m edgeser_export.train_encoder --holdout 1-4 ... --out
runs/folds/fold-1``, ...) and given as ``--fold K=PATH`` (a ``Wav2Vec2ForCTC`` folder or a bundle), with
``--text-bundle`` for the text encoder.

On each fold, every head configuration of ``edgeser_export.default_model.VARIANTS`` (the ablation: speech frames, frames
+ phones, all levels, and early + late fusion with text over frames and over all levels; phones, syllables and
words from hama's aligner with the transcript) is trained on the 16 other actors, ``--seeds`` seeds averaged, as
``edgeser_export.default_model`` trains them. eGeMAPS + LR is trained on the same actors (global z-scores from them;
needs openSMILE, ``pip install -e '.[bench]'``). Reported: UA/WA per fold (mean ± std), UA/WA of all 560
utterances' predictions pooled, and stratified paired bootstraps of the pooled UA differences (95% intervals):
each speech row minus eGeMAPS, each row minus speech frames, and each fused row minus speech alone on the same
levels.

Also, the frames row and eGeMAPS with per-speaker normalisation (each actor's frames, or functionals, z-scored
with that actor's own statistics, test actors included): what enrolled speaker statistics give.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeser import EmotionRecognizer
from edgeser.datasets import load_ravdess
from edgeser.metrics import confusion_matrix, unweighted_accuracy, weighted_accuracy
from edgeser.speaker import SpeakerStats
from edgeser_benchmarks.provenance import write_result
from edgeser_benchmarks.stats import interval, paired_bootstrap_ua
from edgeser_benchmarks.studies.egemaps_baseline import egemaps, fit_predict, per_speaker
from edgeser_export.default_model import DATA, SEGMENTER, TRAIN, VARIANTS
from edgeser_export.features import compute
from edgeser_export.model import FusionConfig
from edgeser_export.train import Features, predict, train_ensemble

SPEECH = "speech: frames"
PER_SPEAKER = "speech: frames, per-speaker normalised"
BASELINES = ("eGeMAPS + LR", "eGeMAPS + LR, per-speaker normalised")


def speaker_normalised(items: list[Features], groups: np.ndarray) -> list[Features]:
    """Each group's frames normalised with that group's profile over all its frames (what
    :class:`edgeser.speaker.SpeakerStats` and ``SpeakerProfile.normalise`` compute for an enrolled speaker)."""
    out = [dict(it) for it in items]
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        stats = SpeakerStats(items[idx[0]]["frame"].shape[1])
        for i in idx:
            stats.add(items[i]["frame"])
        profile = stats.profile(encoder_sha256="", layer=0)
        for i in idx:
            out[i]["frame"] = profile.normalise(items[i]["frame"])
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
        from edgeser_export.pipeline import export_bundle
        from edgeser_export.sources import load_speech

        export_bundle(out, speech=load_speech(src), overwrite=True, progress=print)
    return int(k), out


def protocol() -> str:
    """The docstring's paragraphs that say what is trained and scored (recorded in the result file)."""
    paragraphs = (__doc__ or "").split("\n\n")
    return "\n\n".join(p for p in paragraphs if p.startswith(("On each fold", "Also, the frames row")))


def fold_bundles(args: argparse.Namespace) -> dict[int, Path]:
    if args.encoder_bundle is not None:
        return dict.fromkeys(range(1, 6), args.encoder_bundle)
    if not args.fold:
        raise SystemExit("give --encoder-bundle (one pretrained encoder for every fold) or --fold K=PATH per fold")
    return dict(sorted(fold_bundle(spec, args.work) for spec in args.fold))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder-bundle", type=Path, help="one bundle (speech and text encoders) for every fold")
    ap.add_argument("--fold", action="append", metavar="K=PATH",
                    help="fold K (actors 4K-3..4K held out): its encoder folder or bundle; repeat for each fold")
    ap.add_argument("--text-bundle", type=Path, help="a bundle with the text encoder (default: --encoder-bundle)")
    ap.add_argument("--rows", default=";".join(VARIANTS),
                    help="head configurations (edgeser_export.default_model.VARIANTS), separated by semicolons")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--work", type=Path, default=Path("runs/folds"), help="exported bundles and feature caches")
    ap.add_argument("--egemaps-cache", type=Path, default=Path("runs/egemaps.npy"))
    ap.add_argument("--add-to", type=Path, default=None,
                    help="an earlier result of this benchmark (same data and folds): train only --rows and keep its "
                         "other rows, so that one file holds every row")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rows = [r.strip() for r in args.rows.split(";")]
    earlier = json.loads(args.add_to.read_text()) if args.add_to else None
    unknown = [r for r in rows if r not in VARIANTS]
    if unknown or (SPEECH not in rows and earlier is None):
        raise SystemExit(f"--rows: unknown {unknown}; choose from {list(VARIANTS)} (including {SPEECH!r})")
    folds = fold_bundles(args)
    ds = load_ravdess(DATA)
    labels = ds.label_ids()
    groups = np.array([u.group for u in ds.utterances])
    actor_folds = ds.folds(5)  # the baseline benchmark's folds: actors 01-04, 05-08, ...
    text_rec = EmotionRecognizer.from_bundle(args.text_bundle or args.encoder_bundle)
    text = compute(text_rec, ds, (), True, args.work / "cache")
    if text.failures or len(text.items) != len(ds):
        raise SystemExit(f"text features failed: {text.failures}")
    levels = tuple(dict.fromkeys(lv for r in rows for lv in VARIANTS[r]["levels"]))
    x = egemaps(ds, args.egemaps_cache)
    x_speaker = per_speaker(x, groups)
    pooled: dict[str, np.ndarray] = {name: np.full(len(ds), -1) for name in (*rows, PER_SPEAKER, *BASELINES)}
    per_fold: list[dict[str, Any]] = []
    features: dict[Path, list[Features]] = {}
    for k, bundle in folds.items():
        tr, te = actor_folds[k - 1]
        held = sorted(set(groups[te].tolist()))
        rec = EmotionRecognizer.from_bundle(bundle)
        if bundle not in features:
            speech = compute(rec, ds, levels, False, args.work / "cache",
                             segmenter=SEGMENTER if set(levels) - {"frame"} else "bundle")
            if speech.failures or len(speech.items) != len(ds):
                raise SystemExit(f"fold {k}: speech features failed: {speech.failures}")
            features[bundle] = [{**f, **t} for f, t in zip(speech.items, text.items, strict=True)]
        items = features[bundle]
        fold: dict[str, Any] = {"fold": k, "held_out": held, "bundle": str(bundle)}
        normalised = speaker_normalised(items, groups)
        for name, source, variant in [*((r, items, r) for r in rows), (PER_SPEAKER, normalised, SPEECH)]:
            config = FusionConfig(speech_dim=rec.speech.hidden_size,
                                  text_dim=text_rec.bundle.manifest.text.hidden_size,  # type: ignore[union-attr]
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
    if earlier is not None:  # the rows not trained now, from the earlier run (same utterances, same folds)
        if earlier["truth"] != labels.tolist() or [f["held_out"] for f in earlier["folds"]] != \
                [f["held_out"] for f in per_fold]:
            raise SystemExit(f"{args.add_to}: other utterances or folds than this run's")
        for name, pred in earlier["predictions"].items():
            if name not in pooled:
                pooled[name] = np.asarray(pred)
                for fold, old in zip(per_fold, earlier["folds"], strict=True):
                    fold[name] = old[name]
        rows = [r for r in VARIANTS if r in pooled]
    scored = np.flatnonzero(pooled[SPEECH] >= 0)
    truth = labels[scored]
    summary: dict[str, Any] = {}
    for name, pred in pooled.items():
        cm = confusion_matrix(truth, pred[scored], len(ds.labels))
        uas = [f[name]["ua"] for f in per_fold]
        was = [f[name]["wa"] for f in per_fold]
        summary[name] = {"ua_mean": float(np.mean(uas)), "ua_std": float(np.std(uas)), "wa_mean": float(np.mean(was)),
                         "pooled_ua": unweighted_accuracy(cm), "pooled_wa": weighted_accuracy(cm),
                         "confusion": cm.tolist()}

    def minus(a: str, b: str) -> dict[str, float]:
        return paired_bootstrap_ua(truth, pooled[a][scored], pooled[b][scored], len(ds.labels))

    comparisons = {f"{r} minus eGeMAPS": minus(r, BASELINES[0]) for r in rows if r.startswith("speech")}
    comparisons |= {f"{r} minus speech frames": minus(r, SPEECH) for r in rows if r != SPEECH}
    for r in rows:  # each fused row against speech alone on the same levels
        alone = r.replace("fusion:", "speech:").replace(", early + late with text", "")
        if r.startswith("fusion") and alone in pooled and alone != SPEECH:
            comparisons[f"{r} minus {alone}"] = minus(r, alone)
    comparisons["per-speaker: speech frames minus eGeMAPS"] = minus(PER_SPEAKER, BASELINES[1])
    for name, s in summary.items():
        print(f"{name}: UA {100 * s['ua_mean']:.1f} ± {100 * s['ua_std']:.1f} over {len(per_fold)} folds; "
              f"pooled UA {100 * s['pooled_ua']:.1f}, WA {100 * s['pooled_wa']:.1f}")
    for name, c in comparisons.items():
        print(f"{name}: {interval(c)}")
    encoder = EmotionRecognizer.from_bundle(next(iter(folds.values()))).speech
    result = {"protocol": protocol(), "seeds": args.seeds,
              "encoder": {"bundles": {k: str(v) for k, v in folds.items()}, "architecture": encoder.architecture,
                          "source": encoder.provenance.get("source", {}).get("name"),
                          "exposed_layers": list(encoder.exposed_layers)},
              "folds": per_fold, "utterances": int(scored.size),
              "summary": summary, "comparisons": comparisons, "truth": truth.tolist(),
              "predictions": {n: p[scored].tolist() for n, p in pooled.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
