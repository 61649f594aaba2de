"""The text branch on MELD (4 classes): a trained text head on frozen all-MiniLM-L6-v2 token embeddings
against the baseline of mean-pooled MiniLM embeddings + class-balanced logistic regression.

Both are selected on the dev split (epoch and setting for the head, C for the regression) and scored once on
test. The head is an average of ``--seeds`` models (each keeping its best dev epoch), as the default model's
head is; each seed's own dev UA is reported too. Embeddings come from edgeser's runtime (the exported text
graph in ONNX Runtime) and are cached.

    python -m edgeser_benchmarks.studies.meld_text --out benchmarks/results/meld_text.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from rich.progress import track
from sklearn.linear_model import LogisticRegression

from edgeser import EmotionRecognizer
from edgeser.datasets import Dataset, load_meld
from edgeser.metrics import confusion_matrix, unweighted_accuracy, weighted_accuracy
from edgeser_benchmarks.provenance import write_result
from edgeser_export.model import FusionConfig
from edgeser_export.pipeline import export_bundle
from edgeser_export.sources import load_text
from edgeser_export.train import TrainConfig, predict, train_ensemble

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "meld_text"
GRID = ((128, 0.2, 1e-3), (128, 0.3, 3e-4), (64, 0.3, 3e-4), (64, 0.5, 1e-3))


def embed(rec: EmotionRecognizer, ds: Dataset, cache: Path) -> list[np.ndarray]:
    """Token embeddings per utterance, without padding (cached as one .npz per split)."""
    if cache.is_file():
        with np.load(cache) as z:
            return [z[str(i)] for i in range(len(z.files))]
    texts = [u.transcript or "" for u in ds.utterances]
    out: list[np.ndarray] = []
    for i in track(range(0, len(texts), 64), description=f"embedding {cache.stem}"):
        batch = rec.embed_text(texts[i : i + 64])
        out += [batch.token_embeddings[j, : int(batch.token_mask[j].sum())] for j in range(len(batch.tokens))]
    np.savez(cache, *[], **{str(i): a for i, a in enumerate(out)})  # type: ignore[arg-type]
    return out


def scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    cm = confusion_matrix(y, pred, 4)
    return {"ua": round(unweighted_accuracy(cm), 4), "wa": round(weighted_accuracy(cm), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "edgeser-meld-cache")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=5, help="models per head setting, averaged")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    bundle = args.cache / "minilm-bundle"
    if not bundle.is_dir():
        export_bundle(bundle, text=load_text("minilm"), exporter="torchscript")
    rec = EmotionRecognizer.from_bundle(bundle)
    splits = {s: load_meld(DATA, splits=(s,)) for s in ("train", "dev", "test")}
    tokens = {s: embed(rec, ds, args.cache / f"{s}.npz") for s, ds in splits.items()}
    y = {s: ds.label_ids() for s, ds in splits.items()}

    pooled = {s: np.stack([t.mean(0) for t in tokens[s]]) for s in splits}
    best_c, best_ua = 1.0, -1.0
    for c in (0.01, 0.1, 1.0, 10.0):
        lr = LogisticRegression(C=c, class_weight="balanced", max_iter=3000).fit(pooled["train"], y["train"])
        ua = scores(y["dev"], lr.predict(pooled["dev"]))["ua"]
        if ua > best_ua:
            best_c, best_ua = c, ua
    baseline = LogisticRegression(C=best_c, class_weight="balanced", max_iter=3000).fit(pooled["train"], y["train"])

    items = {s: [{"text": t} for t in tokens[s]] for s in splits}
    grid = []  # (dim, dropout, lr), chosen by dev UA; test is scored once, for the chosen setting
    for dim, dropout, lr in GRID:
        config = FusionConfig(speech_dim=1, text_dim=tokens["train"][0].shape[1], levels=(), early=False,
                              late=True, use_text=True, dim=dim, heads=4, dropout=dropout)
        model = train_ensemble(config, items["train"], y["train"],
                               TrainConfig(epochs=args.epochs, lr=lr, seeds=args.seeds), valid=(items["dev"], y["dev"]))
        members = [scores(y["dev"], predict(m, items["dev"]).argmax(1))["ua"] for m in model.models]
        grid.append(({"dim": dim, "dropout": dropout, "lr": lr, "seeds": args.seeds, "member_dev_ua": members,
                      "valid_ua": scores(y["dev"], predict(model, items["dev"]).argmax(1))["ua"]}, model))
        print(grid[-1][0])
    chosen, model = max(grid, key=lambda g: g[0]["valid_ua"])
    result = {
        "data": {s: ds.counts() for s, ds in splits.items()},
        "baseline_minilm_mean_logreg": {"C": best_c, "dev": scores(y["dev"], baseline.predict(pooled["dev"])),
                                        "test": scores(y["test"], baseline.predict(pooled["test"]))},
        "text_head_grid_on_dev": [g for g, _ in grid],
        "text_head": {"chosen_on_dev": chosen, "dev": scores(y["dev"], predict(model, items["dev"]).argmax(1)),
                      "test": scores(y["test"], predict(model, items["test"]).argmax(1))},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
