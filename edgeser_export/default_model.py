"""Build the shipped default model from a trained compact encoder, and measure it on held-out actors.

    python -m edgeser_export.train_encoder --holdout 17-20 --epochs 16 --perturb --out runs/encoder-17-20
    python -m edgeser_export.default_model --encoder runs/encoder-17-20/encoder --out runs/default
    python -m edgeser_export.default_model --encoder-bundle BUNDLE --out runs/default   # encoders already exported

1. Export the encoder (phoneme CTC + hidden states) with MiniLM into a bundle, or take the speech and text
   encoders of an existing bundle (one exported with both, ``edgeser export --speech ... --text minilm``),
   leaving out any emotion head it has.
2. Features of every RAVDESS 4-class utterance through that bundle (one encoder pass each; segments from
   hama's phoneme aligner with the transcript: the compact encoder's own CTC head has only heard RAVDESS's
   two sentences, so it cannot segment other speech).
3. Head configurations (speech levels, fusion with text) compared by validation UA: trained on actors
   01-12, validated on 13-16. The best is the one shipped; no choice looks at the held-out actors. Each
   head is an ensemble of ``--seeds`` models (seeds 0..N-1) whose probabilities are averaged: one head's
   UA on these few hundred utterances moves by several points with its seed, too much to choose by.
4. Every configuration is then trained on actors 01-16 and scored once on the held-out actors 17-20,
   which neither the encoder nor the heads ever saw (all reported, as an ablation). The shipped head is
   the chosen configuration trained on 01-16: exactly the measured model. Its parts without the text
   encoder go to ``edgeser/models/default`` (``--ship``); the complete bundle to ``OUT/full``; the
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
from edgeser.datasets import load_ravdess, ravdess_unscored
from edgeser.errors import BundleError
from edgeser.metrics import confusion_matrix, unweighted_accuracy, weighted_accuracy
from edgeser.model.bundle import Bundle
from edgeser.model.writer import write_bundle
from edgeser.speaker import SpeakerProfile
from edgeser_export.features import compute
from edgeser_export.model import LEVELS, FusionConfig
from edgeser_export.pipeline import add_fusion, export_bundle
from edgeser_export.sources import load_speech, load_text
from edgeser_export.storage import speech_fp16
from edgeser_export.train import TrainConfig, predict, train_ensemble

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess"
HELD_OUT = tuple(f"Actor_{i:02d}" for i in range(17, 21))
TRAIN = TrainConfig(epochs=30)
VALIDATION = tuple(f"Actor_{i:02d}" for i in range(13, 17))
VARIANTS: dict[str, dict[str, Any]] = {
    "speech: frames": {"levels": ("frame",), "early": False, "late": True, "use_text": False, "pooling": "statistics"},
    "speech: frames, the paper's mean pooling": {"levels": ("frame",), "early": False, "late": True,
                                                 "use_text": False},
    "speech: frames + phones": {"levels": ("frame", "phone"), "early": False, "late": True, "use_text": False,
                                "pooling": "statistics"},
    "speech: all levels": {"levels": LEVELS, "early": False, "late": True, "use_text": False, "pooling": "statistics"},
    "fusion: frames, early + late with text": {"levels": ("frame",), "early": True, "late": True, "use_text": True,
                                               "pooling": "statistics", "mix": "residual"},
    "fusion: all levels, early + late with text": {"levels": LEVELS, "early": True, "late": True,
                                                   "use_text": True, "pooling": "statistics", "mix": "residual"},
}
"""The head configurations compared (the ablation). Every late speech branch but one pools statistics (the mean
and std of each encoder dimension, z-scored with the training utterances: ``FusionConfig.pooling``); the row
with the paper's mean of projected positions shows what that choice is worth on Whisper's frames. The fused rows
add the early and text branches to the speech branch through gates that start at 0 (``FusionConfig.mix``)."""
SEGMENTER = "hama"
"""The compact encoder's CTC head has only heard RAVDESS's two sentences, so segments (and, without a
transcript, the words) come from hama's phoneme recognizer, trained on far more speech."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--encoder", type=Path, help="Wav2Vec2ForCTC folder from edgeser_export.train_encoder")
    source.add_argument("--encoder-bundle", type=Path, help="a bundle with the speech and text encoders to use")
    ap.add_argument("--seeds", type=int, default=5, help="models per head, averaged (default 5)")
    ap.add_argument("--folds", type=Path, default=None,
                    help="a edgeser_benchmarks.studies.ravdess_folds result: ship its best configuration (pooled "
                         "five-fold UA) trained on all 20 actors, instead of choosing on actors 13-16 and holding out "
                         "17-20")
    ap.add_argument("--configuration", choices=list(VARIANTS), default=None,
                    help="with --folds: ship this configuration instead of the best one (say why in the model card)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--ship", action="store_true", help="write the parts to edgeser/models/default")
    args = ap.parse_args()
    try:
        train_config = replace(TRAIN, seeds=args.seeds)
    except ValueError as e:  # TrainConfig checks the count
        ap.error(str(e))
    args.out.mkdir(parents=True, exist_ok=True)
    encoder_bundle = args.out / "encoder-bundle"
    if not encoder_bundle.is_dir():
        if args.encoder_bundle is not None:
            encoders_only(args.encoder_bundle, encoder_bundle)
        else:
            export_bundle(encoder_bundle, speech=load_speech(args.encoder), text=load_text("minilm"), progress=print)
    if args.folds is not None:
        all_actors(encoder_bundle, args.folds, train_config, args.out, args.ship, args.configuration)
        return
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
                               "train": asdict(train_config), "variants": {}}
    valid = np.isin(groups, VALIDATION)
    inner_idx, valid_idx = np.flatnonzero(~test & ~valid), np.flatnonzero(valid)
    models = {}
    for name, switches in VARIANTS.items():
        config = FusionConfig(speech_dim=speech_dim, text_dim=text_dim, num_classes=len(ds.labels), labels=ds.labels,
                              **switches)
        keep = [*config.levels, *(["text"] if config.use_text else [])]
        items = [{k: it[k] for k in keep} for it in feats.items]
        scores = {}
        for part, fit, score in (("validation_13_16", inner_idx, valid_idx), ("held_out_17_20", train_idx, test_idx)):
            model = train_ensemble(config, [items[i] for i in fit], labels[fit], train_config)
            scored = [items[i] for i in score]
            cm = confusion_matrix(labels[score], predict(model, scored).argmax(1), len(ds.labels))
            members = [unweighted_accuracy(confusion_matrix(labels[score], predict(member, scored).argmax(1),
                                                            len(ds.labels)))
                       for member in model.models]
            scores[part] = {"ua": unweighted_accuracy(cm), "wa": weighted_accuracy(cm), "confusion": cm.tolist(),
                            "member_ua": members}
        results["variants"][name] = scores
        print(f"{name}: validation UA {100 * scores['validation_13_16']['ua']:.1f}; held-out UA "
              f"{100 * scores['held_out_17_20']['ua']:.1f}, WA {100 * scores['held_out_17_20']['wa']:.1f}")
        models[name] = model  # trained on 01-16
    chosen = max(VARIANTS, key=lambda n: results["variants"][n]["validation_13_16"]["ua"])
    results["chosen_on_validation"] = chosen
    print(f"chosen on validation: {chosen}")
    train_groups = sorted(set(groups[train_idx].tolist()))
    provenance = {"dataset": "ravdess (4-class)", "data_path": str(DATA), "utterances": len(train_idx),
                  "train_groups": train_groups, "held_out_groups": list(HELD_OUT), "train": asdict(train_config),
                  "configuration": chosen,
                  "chosen_on": "validation actors 13-16 (heads trained on 01-12)",
                  "held_out_scores": results["variants"][chosen]["held_out_17_20"]}
    full = args.out / "full"
    add_fusion(encoder_bundle, models[chosen], full, layer=0, provenance=provenance, segmenter=SEGMENTER,
               overwrite=True, progress=print)
    (args.out / "default_model.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.ship:
        ship(full, default.SHIPPED)


def all_actors(encoder_bundle: Path, folds_file: Path, train_config: TrainConfig, out: Path, ship_it: bool,
               configuration: str | None = None) -> None:
    """``configuration``, or the one with the best pooled five-fold UA in ``folds_file`` (the simpler one on a tie,
    in :data:`VARIANTS` order), trained on all 20 actors; its expected accuracy on new speakers is that five-fold
    figure (an encoder that has never heard RAVDESS serves every fold, so the folds measure the shipped recipe)."""
    folds = json.loads(folds_file.read_text())
    summary = folds["summary"]
    best = max((n for n in VARIANTS if n in summary), key=lambda n: (round(summary[n]["pooled_ua"], 4),
                                                                       -list(VARIANTS).index(n)))
    chosen = configuration or best
    rec = EmotionRecognizer.from_bundle(encoder_bundle)
    ds = load_ravdess(DATA)
    config = FusionConfig(speech_dim=rec.speech.hidden_size,
                          text_dim=rec.bundle.manifest.text.hidden_size,  # type: ignore[union-attr]
                          num_classes=len(ds.labels), labels=ds.labels, **VARIANTS[chosen])
    levels = config.levels
    feats = compute(rec, ds, levels, config.use_text, out / "cache",
                    segmenter=SEGMENTER if set(levels) - {"frame"} else "bundle")
    if feats.failures:
        raise BundleError(f"features failed for {len(feats.failures)} utterances: {feats.failures[:3]}")
    labels = ds.label_ids()[feats.indices]
    model = train_ensemble(config, feats.items, labels, train_config)
    speaker_model = None
    if config.levels == ("frame",) and not config.use_text:  # the head for enrolled speakers, trained the same way
        profiles = actor_profiles(rec)
        actors = [ds.utterances[i].group for i in feats.indices]
        items = [{"frame": profiles[a].normalise(it["frame"])} for a, it in zip(actors, feats.items, strict=True)]
        speaker_model = train_ensemble(config, items, labels, train_config)
    groups = sorted({u.group for u in ds.utterances})
    print(f"configuration: {chosen} (five-fold pooled UA {100 * summary[chosen]['pooled_ua']:.1f}); trained on "
          f"{len(groups)} actors, {len(labels)} utterances")
    provenance = {"dataset": "ravdess (4-class), RAVDESS speech, CC BY-NC-SA 4.0 (Livingstone & Russo 2018)",
                  "data_path": "../shared/data/ravdess", "utterances": len(labels), "train_groups": groups,
                  "held_out_groups": [], "train": asdict(train_config), "configuration": chosen,
                  "chosen_on": (f"pooled UA over the five actor folds ({folds_file.name}, "
                                "edgeser_benchmarks.studies.ravdess_folds)"
                                if chosen == best else f"named by --configuration (the five folds' best is {best!r})"),
                  "five_fold_scores": {k: summary[chosen][k] for k in ("pooled_ua", "pooled_wa", "ua_mean", "ua_std")},
                  "five_fold_speech_frames": {k: summary["speech: frames"][k] for k in ("pooled_ua", "pooled_wa")}}
    speaker_provenance = {**provenance, "normalisation": (
        "each actor's frames z-scored with that actor's profile from its unscored recordings (calm, fearful, "
        "disgust, surprised), as edgeser enroll makes one")}
    full = out / "full"
    add_fusion(encoder_bundle, model, full, layer=0, provenance=provenance, segmenter=SEGMENTER, overwrite=True,
               speaker_model=speaker_model, speaker_provenance=speaker_provenance, progress=print)
    if ship_it:
        ship(full, default.SHIPPED)


def actor_profiles(rec: EmotionRecognizer) -> dict[str, SpeakerProfile]:
    """Each RAVDESS actor's speaker profile from all of that actor's unscored recordings (what
    ``EmotionRecognizer.enroll`` computes)."""
    return {actor: rec.enroll(paths) for actor, paths in sorted(ravdess_unscored(DATA).items())}


def encoders_only(bundle: Path, out: Path) -> None:
    """A copy of ``bundle`` at ``out`` with its speech and text encoders and without its emotion head."""
    src = Bundle.load(bundle)
    m = src.manifest
    if m.speech is None or m.text is None:
        raise BundleError(f"{bundle}: needs both a speech and a text encoder (export one with both: "
                          "edgeser export --speech ... --text minilm)")
    with write_bundle(out) as writer:
        for name in m.files:
            if m.fusion is None or name != m.fusion.graph:
                shutil.copy2(src.path / name, writer.path(name))
        writer.finish(replace(m, fusion=None, engines=()))


def ship(full: Path, target: Path) -> None:
    """The complete bundle minus its text encoder (the shipped default reads no text: a head that does is
    refused), the speech graph's float16-exact weights stored as float16
    (:func:`edgeser_export.storage.speech_fp16`)."""
    src = Bundle.load(full)
    m = src.manifest
    if m.text is None or m.speech is None:
        raise BundleError(f"{full}: the complete default bundle needs speech and text encoders")
    if m.fusion is not None and m.fusion.uses_text:
        raise BundleError(f"{full}: its head reads text; the shipped default carries no text encoder, so ship a head "
                          "chosen without text")
    with write_bundle(target, overwrite=True) as writer:
        speech = speech_fp16(m.speech, src.path, writer.staging)
        for name in m.files:
            if name not in (m.speech.graph, m.text.graph, m.text.tokenizer):
                shutil.copy2(src.path / name, writer.path(name))
        writer.finish(replace(m, text=None, speech=speech, edgeser_version=edgeser.__version__))


if __name__ == "__main__":
    main()
