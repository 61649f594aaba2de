"""Build the shipped default model from a trained compact encoder, and measure it on held-out actors.

    python -m export.train_encoder --holdout 17-20 --epochs 16 --perturb --out runs/encoder-17-20
    python -m export.default_model --encoder runs/encoder-17-20/encoder --out runs/default

1. Export the encoder (phoneme CTC + hidden states) with MiniLM into a bundle.
2. Features of every RAVDESS 4-class utterance through that bundle (one encoder pass each; segments from
   hama's phoneme aligner with the transcript: the compact encoder's own CTC head has only heard RAVDESS's
   two sentences, so it cannot segment other speech).
3. Heads trained on the actors the encoder was trained on (01-16), scored on the held-out actors (17-20),
   which neither the encoder nor the heads ever saw: speech only (all levels, late), and the shipped
   configuration (all levels, early + late fusion with text). Fixed settings, no choice on held-out data.
4. The shipped head is the early + late one trained on actors 01-16: exactly the measured model. Its parts
   without the text encoder go to ``edgeser/models/default``; the complete bundle to ``OUT/full``; the
   measurements to ``OUT/default_model.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

import edgeser
from edgeser import EmotionRecognizer, default
from edgeser.bundle import Bundle, write_bundle
from edgeser.datasets import load_ravdess
from edgeser.metrics import confusion_matrix, unweighted_accuracy, weighted_accuracy
from export.features import compute
from export.model import LEVELS, FusionConfig
from export.pipeline import add_fusion, export_bundle
from export.sources import load_speech, load_text
from export.train import TrainConfig, predict, train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess"
HELD_OUT = tuple(f"Actor_{i:02d}" for i in range(17, 21))
TRAIN = TrainConfig(epochs=30)
VARIANTS: dict[str, dict[str, Any]] = {
    "speech: frames only": {"levels": ("frame",), "early": False, "late": True, "use_text": False},
    "speech: all levels": {"levels": LEVELS, "early": False, "late": True, "use_text": False},
    "shipped: all levels, early + late fusion with text": {"levels": LEVELS, "early": True, "late": True,
                                                           "use_text": True},
}
SHIPPED = "shipped: all levels, early + late fusion with text"
SEGMENTER = "hama"
"""The compact encoder's CTC head has only heard RAVDESS's two sentences, so segments (and, without a
transcript, the words) come from hama's phoneme recognizer, trained on far more speech."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", type=Path, required=True, help="Wav2Vec2ForCTC folder from export.train_encoder")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--ship", action="store_true", help="write the parts to edgeser/models/default")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    encoder_bundle = args.out / "encoder-bundle"
    if not encoder_bundle.is_dir():
        export_bundle(encoder_bundle, speech=load_speech(args.encoder), text=load_text("minilm"), progress=print)
    rec = EmotionRecognizer.from_bundle(encoder_bundle)
    ds = load_ravdess(DATA)
    feats = compute(rec, ds, LEVELS, True, args.out / "cache", segmenter=SEGMENTER)
    for uid, reason in feats.failures:
        print(f"skipped {uid}: {reason}")
    labels = ds.label_ids()[feats.indices]
    groups = np.array([ds.utterances[i].group for i in feats.indices])
    test = np.isin(groups, HELD_OUT)
    train_idx, test_idx = np.flatnonzero(~test), np.flatnonzero(test)
    speech_dim = rec.speech.hidden_size
    text_dim = rec.bundle.manifest.text.hidden_size  # type: ignore[union-attr]
    results: dict[str, Any] = {"held_out": list(HELD_OUT), "train_utterances": len(train_idx),
                               "test_utterances": len(test_idx), "failures": feats.failures,
                               "train": asdict(TRAIN), "variants": {}}
    models = {}
    for name, switches in VARIANTS.items():
        config = FusionConfig(speech_dim=speech_dim, text_dim=text_dim, num_classes=len(ds.labels), labels=ds.labels,
                              **switches)
        keep = [*config.levels, *(["text"] if config.use_text else [])]
        items = [{k: it[k] for k in keep} for it in feats.items]
        model, _ = train(config, [items[i] for i in train_idx], labels[train_idx], TRAIN)
        cm = confusion_matrix(labels[test_idx], predict(model, [items[i] for i in test_idx]).argmax(1),
                              len(ds.labels))
        results["variants"][name] = {"ua": unweighted_accuracy(cm), "wa": weighted_accuracy(cm),
                                     "confusion": cm.tolist()}
        print(f"{name}: UA {100 * unweighted_accuracy(cm):.1f}, WA {100 * weighted_accuracy(cm):.1f}")
        models[name] = model
    train_groups = sorted(set(groups[train_idx].tolist()))
    provenance = {"dataset": "ravdess (4-class)", "data_path": str(DATA), "utterances": len(train_idx),
                  "train_groups": train_groups, "held_out_groups": list(HELD_OUT), "train": asdict(TRAIN),
                  "held_out_scores": results["variants"][SHIPPED],
                  "speech_only_held_out_scores": results["variants"]["speech: all levels"]}
    full = args.out / "full"
    add_fusion(encoder_bundle, models[SHIPPED], full, layer=0, provenance=provenance, segmenter=SEGMENTER,
               overwrite=True, progress=print)
    (args.out / "default_model.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.ship:
        ship(full, default.SHIPPED)


def ship(full: Path, target: Path) -> None:
    """The complete bundle minus its text encoder (rebuilt from the pip package on first use)."""
    src = Bundle.load(full)
    m = src.manifest
    assert m.text is not None
    with write_bundle(target, overwrite=True) as writer:
        for name in m.files:
            if name not in (m.text.graph, m.text.tokenizer):
                shutil.copy2(src.path / name, writer.path(name))
        writer.finish(replace(m, text=None, edgeser_version=edgeser.__version__))


if __name__ == "__main__":
    main()
