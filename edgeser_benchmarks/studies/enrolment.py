"""Speaker enrolment measured honestly: enrol each test speaker on audio that is never scored.

Over the five RAVDESS actor folds, on each fold:

- the head for enrolled speakers (the default's configuration, ``speech: frames``, ``--seeds`` seeds averaged) is
  trained on the 16 training actors' 4-class frames, each actor's frames z-scored with that actor's profile
  (:class:`edgeser.speaker.SpeakerStats` over the actor's unscored recordings: calm, fearful, disgust and
  surprised, about two minutes), exactly as ``EmotionRecognizer.enroll`` computes one;
- each of the 4 test actors is enrolled on the first *K* seconds of their own unscored recordings (whole files
  in a fixed shuffled order, until *K* seconds are reached: 5, 10, 30, 60 s, and all of them), and their 4-class
  files (neutral, happy, angry, sad), which enrolment never sees, are scored with that profile.

Reported per *K*: UA/WA of the 560 pooled predictions, per-fold UA, and the stratified paired bootstrap of the
UA difference to the speaker-independent head of ``edgeser_benchmarks.studies.ravdess_folds`` (same folds, same
utterances, read from its result file).

    python -m edgeser_benchmarks.studies.enrolment --bundle runs/tiny-l2 \\
        --folds benchmarks/results/ravdess_folds.json --out benchmarks/results/enrolment.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import track

from edgeser import EmotionRecognizer
from edgeser.datasets import load_ravdess, ravdess_unscored
from edgeser.metrics import confusion_matrix, unweighted_accuracy, weighted_accuracy
from edgeser.speaker import SpeakerProfile, SpeakerStats
from edgeser_benchmarks.provenance import write_result
from edgeser_benchmarks.stats import interval, paired_bootstrap_ua
from edgeser_export.default_model import DATA, TRAIN, VARIANTS
from edgeser_export.features import compute
from edgeser_export.model import FusionConfig
from edgeser_export.train import predict, train_ensemble

SECONDS = (5.0, 10.0, 30.0, 60.0, None)  # None: all of the speaker's unscored recordings


def enrolment_frames(rec: EmotionRecognizer, files: dict[str, list[Path]]) -> dict[str, list[tuple[np.ndarray, float]]]:
    """Per actor, each unscored recording's frames (on the enrolled head's layer) and its seconds."""
    layer = rec._speaker_layer()
    out: dict[str, list[tuple[np.ndarray, float]]] = {}
    for actor, paths in track(sorted(files.items()), description="enrolment audio"):
        rows = []
        for p in paths:
            wave = rec.load_audio(p)
            hidden, _ = rec.encode(wave, sample_rate=16000).item(0)
            rows.append((hidden[layer], wave.size / 16000))
        out[actor] = rows
    return out


def profile(recordings: list[tuple[np.ndarray, float]], seconds: float | None, seed: int, sha: str, layer: int
            ) -> SpeakerProfile:
    """A profile from whole recordings, in a fixed shuffled order, until ``seconds`` (all when ``None``)."""
    order = np.random.default_rng(seed).permutation(len(recordings))
    stats = SpeakerStats(recordings[0][0].shape[1])
    for i in order:
        frames, length = recordings[i]
        stats.add(frames, seconds=length)
        if seconds is not None and stats.seconds >= seconds:
            break
    return stats.profile(sha, layer)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True, help="the encoder bundle the default is trained on")
    ap.add_argument("--folds", type=Path, required=True,
                    help="edgeser_benchmarks.studies.ravdess_folds result (the reference head)")
    ap.add_argument("--row", default="speech: frames", choices=[n for n, v in VARIANTS.items()
                                                                if v["levels"] == ("frame",) and not v["use_text"]],
                    help="the head configuration (frames only; the shipped default's)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--work", type=Path, default=Path("runs/folds"))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rec = EmotionRecognizer.from_bundle(args.bundle)
    ds = load_ravdess(DATA)
    labels = ds.label_ids()
    groups = np.array([u.group for u in ds.utterances])
    frames = compute(rec, ds, ("frame",), False, args.work / "cache")
    if frames.failures or len(frames.items) != len(ds):
        raise SystemExit(f"frame features failed: {frames.failures}")
    enrol = enrolment_frames(rec, ravdess_unscored(DATA))
    sha, layer = rec.speech_sha256, rec._speaker_layer()
    reference = json.loads(args.folds.read_text())
    if reference["truth"] != labels.tolist():
        raise SystemExit(f"{args.folds}: its utterances are not this dataset's, in this order")
    ref_pred = np.asarray(reference["predictions"][args.row])
    config = FusionConfig(speech_dim=rec.speech.hidden_size, text_dim=384, num_classes=len(ds.labels),
                          labels=ds.labels, **VARIANTS[args.row])
    full = {a: profile(r, None, 0, sha, layer) for a, r in enrol.items()}
    pooled = {str(k): np.full(len(ds), -1) for k in SECONDS}
    per_fold = []
    for k, (tr, te) in enumerate(ds.folds(5), start=1):
        items = [{"frame": full[groups[i]].normalise(frames.items[i]["frame"])} for i in tr]
        model = train_ensemble(config, items, labels[tr], replace(TRAIN, seeds=args.seeds))
        fold: dict[str, Any] = {"fold": k, "held_out": sorted(set(groups[te].tolist()))}
        for seconds in SECONDS:
            used = {a: profile(enrol[a], seconds, int(a[-2:]), sha, layer) for a in fold["held_out"]}
            scored = [{"frame": used[groups[i]].normalise(frames.items[i]["frame"])} for i in te]
            pooled[str(seconds)][te] = predict(model, scored).argmax(1)
            cm = confusion_matrix(labels[te], pooled[str(seconds)][te], len(ds.labels))
            fold[str(seconds)] = {"ua": unweighted_accuracy(cm), "wa": weighted_accuracy(cm),
                                  "enrolled_seconds": {a: round(p.seconds, 1) for a, p in used.items()}}
        per_fold.append(fold)
        print(f"fold {k}: " + "; ".join(f"{s or 'all'} s UA {100 * fold[str(s)]['ua']:.1f}" for s in SECONDS))
    summary = {}
    for seconds in SECONDS:
        pred = pooled[str(seconds)]
        cm = confusion_matrix(labels, pred, len(ds.labels))
        uas = [f[str(seconds)]["ua"] for f in per_fold]
        summary[str(seconds)] = {
            "enrolment_s": seconds if seconds is not None else "all (about 120 s)",
            "pooled_ua": unweighted_accuracy(cm), "pooled_wa": weighted_accuracy(cm), "ua_mean": float(np.mean(uas)),
            "ua_std": float(np.std(uas)), "confusion": cm.tolist(),
            "minus_speaker_independent": paired_bootstrap_ua(labels, pred, ref_pred, len(ds.labels))}
        s = summary[str(seconds)]
        print(f"enrolled on {s['enrolment_s']} s: pooled UA {100 * s['pooled_ua']:.1f}, WA {100 * s['pooled_wa']:.1f}"
              f"; minus the speaker-independent head {interval(s['minus_speaker_independent'])}")
    result = {"protocol": __doc__.split("\n\n")[1], "seeds": args.seeds, "bundle": str(args.bundle),
              "reference": {"file": str(args.folds), "row": args.row,
                            "pooled_ua": reference["summary"][args.row]["pooled_ua"]},
              "folds": per_fold, "summary": summary, "truth": labels.tolist(),
              "predictions": {k: v.tolist() for k, v in pooled.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
