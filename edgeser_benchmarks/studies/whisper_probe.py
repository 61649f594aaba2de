"""Which Whisper encoder and layer: a linear probe on RAVDESS 4-class, with latency, side by side in one run.

Each bundle is a Whisper encoder exported with every layer (``edgeser export --speech whisper-tiny.en --layers all
--out runs/whisper-tiny.en``, likewise ``whisper-base``). Every one of the 560 4-class utterances is encoded once,
alone (no batch padding), through the runtime (ONNX Runtime); each layer's frames are pooled into their mean and
standard deviation; a class-balanced logistic regression (the eGeMAPS baseline's own classifier,
``edgeser_benchmarks.studies.egemaps_baseline.fit_predict``: z-scores from the training actors, C = 1) is trained on
16 actors and scored on the 4 held out, over the five actor folds 01-04 ... 17-20.

Reported per encoder and layer: UA/WA of the 560 pooled predictions, per-fold UA (mean +- std), and the stratified
paired bootstrap of the pooled UA difference to eGeMAPS + LR on the same folds (95% interval). Choosing the
layer on these same folds would flatter the winner, so the row ``layer chosen inside each fold`` picks, for each
outer fold, the layer with the best UA over an inner leave-four-actors-out split of its 16 training actors, and
scores that choice on the outer fold: the honest figure for "pick the layer, then meet new speakers". Also,
each speaker's pooled features z-scored with that speaker's own statistics (test speakers included: what
enrolled speaker statistics would give), as a measurement.

Latency, in the same run: each bundle's speech graph on 1, 4 and 10 s clips, 1 ONNX Runtime thread,
interleaved rounds (A B A B ...), with CTranslate2's ``encode()`` on the same clips as the peer a user would
pick (faster-whisper's engine: features padded to a 30 s window, as faster-whisper does, and unpadded), float32,
1 thread. The edgeser time includes the log-mel front end (inside the graph); the CTranslate2 time does not
(its features are computed beforehand), which favours CTranslate2.

    python -m edgeser_benchmarks.studies.whisper_probe --bundle tiny.en=runs/whisper-tiny.en \\
        --bundle base=runs/whisper-base --out benchmarks/results/whisper_probe.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import track

from edgeser import EmotionRecognizer, RuntimeOptions
from edgeser.datasets import Dataset, load_ravdess
from edgeser.metrics import FoldScores, confusion_matrix, unweighted_accuracy, weighted_accuracy
from edgeser.model.bundle import sha256_file
from edgeser_benchmarks.stats import interval, paired_bootstrap_ua
from edgeser_benchmarks.studies.egemaps_baseline import egemaps, fit_predict, per_speaker
from edgeser_benchmarks.suite import machine
from edgeser_benchmarks.timing import Engine, clips, ct2_engines, encode, latency, same

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "ravdess"
CT2_MODELS = {"tiny.en": "whisper-tiny.en", "base": "whisper-base"}


def pooled_features(bundle: Path, ds: Dataset, cache_dir: Path) -> np.ndarray:
    """``(utterances, layers, 2 * hidden)``: per layer, the mean and std of each utterance's frames, cached by
    the bundle's manifest hash."""
    cache = cache_dir / f"whisper-probe-{sha256_file(bundle / 'bundle.json')[:12]}.npy"
    if cache.is_file():
        return np.asarray(np.load(cache))
    rec = EmotionRecognizer.from_bundle(bundle, RuntimeOptions.cpu(threads=2))
    rows = []
    for u in track(ds.utterances, description=f"encoding with {bundle.name}"):
        assert u.path is not None
        hidden, _ = rec.encode(u.path).item(0)  # (layers, frames, dim)
        rows.append(np.concatenate([hidden.mean(axis=1), hidden.std(axis=1)], axis=-1))
    x = np.stack(rows).astype(np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(cache, x)
    return x


def cross_validate(x: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]], normalise: bool = True
                   ) -> tuple[np.ndarray, FoldScores]:
    """Pooled out-of-fold predictions and the per-fold scores."""
    pred = np.full(y.shape, -1)
    matrices = []
    for train, test in folds:
        pred[test] = fit_predict(x, y, train, test, normalise)
        matrices.append(confusion_matrix(y[test], pred[test], 4))
    return pred, FoldScores.from_folds(matrices)


def chosen_inside(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]
                  ) -> tuple[np.ndarray, list[int]]:
    """For each outer fold, the layer with the best inner UA (its 16 training actors in 4 blocks of 4), and
    the outer predictions of that layer."""
    pred = np.full(y.shape, -1)
    picks = []
    for train, test in folds:
        actors = sorted(set(groups[train]))
        blocks = np.array_split(np.arange(len(actors)), 4)
        inner = [(train[~np.isin(groups[train], [actors[i] for i in b])],
                  train[np.isin(groups[train], [actors[i] for i in b])]) for b in blocks]
        scores = []
        for layer in range(x.shape[1]):
            hits = np.full(y.shape, -1)
            for tr, te in inner:
                hits[te] = fit_predict(x[:, layer], y, tr, te)
            scores.append(unweighted_accuracy(confusion_matrix(y[train], hits[train], 4)))
        best = int(np.argmax(scores))
        picks.append(best)
        pred[test] = fit_predict(x[:, best], y, train, test)
    return pred, picks


def row(y: np.ndarray, pred: np.ndarray, folds: FoldScores | None, reference: np.ndarray | None) -> dict[str, Any]:
    cm = confusion_matrix(y, pred, 4)
    out: dict[str, Any] = {"pooled_ua": round(unweighted_accuracy(cm), 4), "pooled_wa": round(weighted_accuracy(cm), 4),
                           "confusion": cm.tolist()}
    if folds is not None:
        d = folds.to_dict()
        out |= {"fold_ua": d["ua_per_fold"], "ua_mean": d["ua_mean"], "ua_std": d["ua_std"]}
    if reference is not None:
        out["minus_egemaps"] = {k: round(v, 4) for k, v in paired_bootstrap_ua(y, pred, reference, 4).items()}
    return out


def engines_for(bundles: dict[str, Path], work: Path) -> dict[str, Engine]:
    """The edgeser speech graphs (the front end included) and CTranslate2's ``encode()`` (features computed
    beforehand), each on 1 thread."""
    out = {}
    for name, path in bundles.items():
        rec = EmotionRecognizer.from_bundle(path, RuntimeOptions.cpu(threads=1))
        out[f"edgeser {name} (ONNX Runtime, fp32)"] = Engine(same, partial(encode, rec))
    for name in bundles:
        out.update(ct2_engines(CT2_MODELS.get(name, ""), work, threads=1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", action="append", required=True, metavar="NAME=PATH",
                    help="A Whisper bundle exported with --layers all (repeat).")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "edgeser-probe")
    ap.add_argument("--egemaps-cache", type=Path, default=Path(tempfile.gettempdir()) / "edgeser-egemaps.npy")
    ap.add_argument("--repeats", type=int, default=20, help="Timed rounds per clip length.")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    bundles = {spec.split("=", 1)[0]: Path(spec.split("=", 1)[1]) for spec in args.bundle}
    ds = load_ravdess(DATA)
    y, folds = ds.label_ids(), ds.folds(5)
    groups = np.array([u.group for u in ds.utterances])
    speakers = np.array([u.speaker for u in ds.utterances])
    args.cache.mkdir(parents=True, exist_ok=True)
    args.egemaps_cache.parent.mkdir(parents=True, exist_ok=True)
    try:
        eg = egemaps(ds, args.egemaps_cache)
        eg_pred, eg_folds = cross_validate(eg, y, folds)
        result: dict[str, Any] = {"egemaps_lr": row(y, eg_pred, eg_folds, None)}
    except ImportError:
        eg_pred, result = None, {"egemaps_lr": "not run: pip install -e '.[bench]' (openSMILE)"}
    result = {"machine": machine(), "data": {"utterances": len(ds), "counts": ds.counts(),
                                             "folds": "5 x 4 held-out actors (01-04 ... 17-20)"},
              "probe": "per layer: mean + std of the frames, z-scored with the training actors, balanced LR (C=1)",
              **result, "encoders": {}}
    for name, path in bundles.items():
        x = pooled_features(path, ds, args.cache)
        manifest = json.loads((path / "bundle.json").read_text())["speech"]
        layers = {}
        for i, layer in enumerate(manifest["exposed_layers"]):
            pred, fs = cross_validate(x[:, i], y, folds)
            layers[str(layer)] = row(y, pred, fs, eg_pred)
            spk = cross_validate(per_speaker(x[:, i].astype(np.float64), speakers), y, folds, normalise=False)[0]
            layers[str(layer)]["per_speaker_normalised"] = row(y, spk, None, None)
        pred, picks = chosen_inside(x, y, groups, folds)
        result["encoders"][name] = {
            "bundle": str(path), "source": manifest["provenance"]["source"].get("name"),
            "layers": layers,
            "layer_chosen_inside_each_fold": {**row(y, pred, None, eg_pred),
                                              "chosen": [manifest["exposed_layers"][p] for p in picks]}}
    result["latency"] = latency(engines_for(bundles, args.cache), clips(ds), args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from edgeser_benchmarks.provenance import write_result

    write_result(args.out, result)
    if isinstance(result["egemaps_lr"], dict):
        print(f"eGeMAPS + LR: pooled UA {100 * result['egemaps_lr']['pooled_ua']:.1f}")
    for name, enc in result["encoders"].items():
        for layer, r in enc["layers"].items():
            print(f"{name} layer {layer}: pooled UA {100 * r['pooled_ua']:.1f} WA {100 * r['pooled_wa']:.1f} "
                  f"(folds {100 * r['ua_mean']:.1f} +- {100 * r['ua_std']:.1f}); minus eGeMAPS "
                  f"{interval(r.get('minus_egemaps'))}; "
                  f"per-speaker {100 * r['per_speaker_normalised']['pooled_ua']:.1f}")
        c = enc["layer_chosen_inside_each_fold"]
        print(f"{name} layer chosen inside each fold {c['chosen']}: pooled UA {100 * c['pooled_ua']:.1f}, minus "
              f"eGeMAPS {interval(c.get('minus_egemaps'))}")
    for clip, engines in result["latency"].items():
        for k, v in engines.items():
            print(f"{clip} {k}: p50 {v['p50_ms']:.1f} ms, x{v['ratio_to_first']['median']:.2f}")


if __name__ == "__main__":
    main()
