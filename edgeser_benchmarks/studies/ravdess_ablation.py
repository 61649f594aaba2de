"""The seed paper's ablation on RAVDESS with the default model's encoder: every row of
``edgeser_export.recipe.ABLATION`` (speech levels one by one, text only, early, late, early + late fusion).

The encoder was trained on actors 01-16, so the usual actor folds would test on speakers it has heard.
Instead every configuration's head is trained on actors 01-16 and scored once on 17-20, which neither the
encoder nor any head ever saw (as ``edgeser_export.default_model`` does for the shipped configurations). Segments
come from hama's phoneme aligner with the transcript (RAVDESS's two neutral sentences), cut with the
library's current boundary rule; the text is that transcript. Each configuration is trained with ``--seeds``
seeds: each seed is scored alone (mean ± std) and the seeds' probabilities are averaged (what
``edgeser_export.default_model`` ships).

112 utterances of 4 speakers make every UA uncertain by several points, so each row is also compared with
the speech-frames row and with the eGeMAPS + logistic-regression baseline (trained on the same actors, when
openSMILE is installed) by a stratified paired bootstrap of the UA difference
(``edgeser_benchmarks.stats.paired_bootstrap_ua``; 95% interval). Per-utterance predictions are kept in the result.

    python -m edgeser_benchmarks.studies.ravdess_ablation --encoder-bundle runs/default/encoder-bundle \\
        --out benchmarks/results/ravdess_ablation.json
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeser import EmotionRecognizer
from edgeser.datasets import Dataset, load_ravdess
from edgeser.metrics import confusion_matrix, unweighted_accuracy, weighted_accuracy
from edgeser_benchmarks.provenance import write_result
from edgeser_benchmarks.stats import interval, paired_bootstrap_ua
from edgeser_benchmarks.studies.egemaps_baseline import egemaps, fit_predict
from edgeser_export.default_model import DATA, HELD_OUT, SEGMENTER, TRAIN
from edgeser_export.features import compute
from edgeser_export.model import LEVELS, FusionConfig
from edgeser_export.recipe import ABLATION
from edgeser_export.train import predict, train_ensemble


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder-bundle", type=Path, required=True, help="the encoder + MiniLM bundle that "
                    "edgeser_export.default_model writes (OUT/encoder-bundle)")
    ap.add_argument("--cache", type=Path, default=Path("runs/ablation-cache"))
    ap.add_argument("--seeds", type=int, default=5, help="heads per configuration (seeds 0..N-1): scored one by "
                    "one (mean ± std) and averaged (one ensemble)")
    ap.add_argument("--egemaps-cache", type=Path, default=Path("runs/egemaps.npy"),
                    help="eGeMAPS functionals of the dataset, computed once (needs openSMILE: "
                    "pip install -e '.[bench]')")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rec = EmotionRecognizer.from_bundle(args.encoder_bundle)
    ds = load_ravdess(DATA)
    feats = compute(rec, ds, LEVELS, True, args.cache, segmenter=SEGMENTER)
    labels = ds.label_ids()[feats.indices]
    groups = np.array([ds.utterances[i].group for i in feats.indices])
    test = np.isin(groups, HELD_OUT)
    train_idx, test_idx = np.flatnonzero(~test), np.flatnonzero(test)
    rows: list[dict[str, Any]] = []
    for name, switches in ABLATION:
        config = FusionConfig(speech_dim=rec.speech.hidden_size, text_dim=rec.bundle.manifest.text.hidden_size,  # type: ignore[union-attr]
                              num_classes=len(ds.labels), labels=ds.labels, **switches)
        keep = [*config.levels, *(["text"] if config.use_text else [])]
        items = [{k: it[k] for k in keep} for it in feats.items]
        ensemble = train_ensemble(config, [items[i] for i in train_idx], labels[train_idx],
                                  replace(TRAIN, seeds=args.seeds))
        tested = [items[i] for i in test_idx]
        ua, wa = [], []
        for member in ensemble.models:
            cm = confusion_matrix(labels[test_idx], predict(member, tested).argmax(1), len(ds.labels))
            ua.append(unweighted_accuracy(cm))
            wa.append(weighted_accuracy(cm))
        predicted = predict(ensemble, tested).argmax(1)
        cm = confusion_matrix(labels[test_idx], predicted, len(ds.labels))
        rows.append({"configuration": name, "predictions": predicted.tolist(), "ensemble_ua": unweighted_accuracy(cm),
                     "ensemble_wa": weighted_accuracy(cm), "ua_mean": float(np.mean(ua)), "ua_std": float(np.std(ua)),
                     "wa_mean": float(np.mean(wa)), "wa_std": float(np.std(wa)), "ua": ua, "wa": wa})
        print(f"{name}: {args.seeds} seeds averaged UA {100 * rows[-1]['ensemble_ua']:.1f}, WA "
              f"{100 * rows[-1]['ensemble_wa']:.1f}; one seed UA {100 * np.mean(ua):.1f} ± {100 * np.std(ua):.1f}")
    truth = labels[test_idx]
    baseline = egemaps_row(ds, feats.indices, train_idx, test_idx, labels, args.egemaps_cache)
    for row in rows:
        row["vs_speech_frames"] = paired_bootstrap_ua(truth, row["predictions"], rows[0]["predictions"], len(ds.labels))
        if "predictions" in baseline:
            row["vs_egemaps"] = paired_bootstrap_ua(truth, row["predictions"], baseline["predictions"], len(ds.labels))
        print(f"{row['configuration']}: UA minus speech frames {interval(row['vs_speech_frames'])}"
              + (f"; minus eGeMAPS {interval(row['vs_egemaps'])}" if "vs_egemaps" in row else ""))
    result = {"protocol": "\n\n".join(__doc__.split("\n\n")[1:3]), "truth": truth.tolist(), "baseline": baseline,
              "held_out": list(HELD_OUT), "train_utterances": len(train_idx),
              "test_utterances": len(test_idx), "seeds": args.seeds, "failures": feats.failures, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)


def egemaps_row(ds: Dataset, indices: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray, labels: np.ndarray,
                cache: Path) -> dict[str, Any]:
    """eGeMAPS + class-balanced logistic regression (global z-scores from the training actors) on the same
    split, with its predictions; or the reason it was skipped."""
    name = "eGeMAPS + logistic regression (same split)"
    try:
        x = egemaps(ds, cache)[indices]
    except ImportError:
        return {"configuration": name, "skipped": "openSMILE is not installed (pip install -e '.[bench]')"}
    predicted = fit_predict(x, labels, train_idx, test_idx)
    cm = confusion_matrix(labels[test_idx], predicted, len(ds.labels))
    return {"configuration": name, "predictions": predicted.tolist(), "ua": unweighted_accuracy(cm),
            "wa": weighted_accuracy(cm)}


if __name__ == "__main__":
    main()
