"""The speech baseline: eGeMAPS v02 functionals (openSMILE) + logistic regression on RAVDESS 4-class.

Speaker-independent: 5 folds of 4 held-out actors (01-04, 05-08, ...). Two normalisations:
- global: z-scores with the training folds' statistics;
- per speaker: each actor's features z-scored with that actor's own statistics, test actors included
  (this uses unlabelled audio of the test speaker, so a runtime using it needs speaker statistics).
Class-balanced logistic regression, C = 1. openSMILE is under audEERING's research licence; it is a
benchmark dependency only (``pip install -e ".[bench]"``).

    python -m edgeser_benchmarks.studies.egemaps_baseline --out benchmarks/results/egemaps_baseline.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from rich.progress import track

from edgeser.audio import load_audio
from edgeser.datasets import Dataset, load_ravdess
from edgeser.metrics import FoldScores, confusion_matrix
from edgeser_benchmarks.provenance import write_result

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "ravdess"


def egemaps(ds: Dataset, cache: Path) -> np.ndarray:
    """``(utterances, 88)`` eGeMAPSv02 functionals, cached."""
    if cache.is_file():
        return np.asarray(np.load(cache))
    import opensmile

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    rows = []
    for u in track(ds.utterances, description="eGeMAPS"):
        if u.path is None:
            raise ValueError(f"{u.id}: no audio path")
        rows.append(smile.process_signal(load_audio(u.path), 16000).to_numpy()[0])
    x = np.stack(rows).astype(np.float64)
    np.save(cache, x)
    return x


def per_speaker(x: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    for s in np.unique(speakers):
        rows = speakers == s
        out[rows] = (x[rows] - x[rows].mean(0)) / (x[rows].std(0) + 1e-8)
    return out


def fit_predict(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, normalise: bool = True
                ) -> np.ndarray:
    """Class-balanced logistic regression (C = 1) trained on ``x[train]``, its predictions for ``x[test]``;
    with ``normalise``, features z-scored with the training rows' statistics first."""
    xtr, xte = x[train], x[test]
    if normalise:
        mu, sd = xtr.mean(0), xtr.std(0) + 1e-8
        xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    from sklearn.linear_model import LogisticRegression  # here: edgeser bench imports this module without it

    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000).fit(xtr, y[train])
    return np.asarray(model.predict(xte))


def evaluate(x: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]], normalise: str) -> FoldScores:
    matrices = [confusion_matrix(y[test], fit_predict(x, y, train, test, normalise == "global"), 4)
                for train, test in folds]
    return FoldScores.from_folds(matrices)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "edgeser-egemaps.npy")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    ds = load_ravdess(DATA)
    x, y = egemaps(ds, args.cache), ds.label_ids()
    speakers = np.array([u.speaker for u in ds.utterances])
    folds = ds.folds(5)
    result = {"data": {"utterances": len(ds), "counts": ds.counts(), "folds": "5 x 4 held-out actors"},
              "features": "eGeMAPSv02 functionals (88), openSMILE", "classifier": "logistic regression, balanced",
              "global_normalisation": evaluate(x, y, folds, "global").to_dict(),
              "per_speaker_normalisation": evaluate(per_speaker(x, speakers), y, folds, "none").to_dict()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)
    print(json.dumps({k: {m: v[m] for m in ("ua_mean", "ua_std", "wa_mean")} if isinstance(v, dict) and "ua_mean"
                      in v else v for k, v in result.items()}, indent=2))


if __name__ == "__main__":
    main()
