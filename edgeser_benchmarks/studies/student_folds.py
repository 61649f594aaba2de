"""The distilled student (``edgeser_export.distill_whisper``) against its teacher, the default's encoder, over the five
actor folds.

On each fold a student is distilled from the teacher (tiny.en to block 2) on every recording of the 16 training
actors (all eight emotions, no labels; the 4 held-out actors' audio is never heard), exported, and the default's
head configuration (``speech: frames``, ``--seeds`` seeds averaged) is trained on its frames of the training
actors' 4-class files and scores the held-out actors. The teacher's own head is trained and scored on the same
folds in the same run. With ``--int8`` each fold's student is also quantized (static INT8, calibrated on 32 clips
of that fold's training actors) and scored under the FP32 student's head. Reported: pooled UA/WA over the 560
utterances, the stratified paired bootstrap of the student's UA minus the teacher's, and the speech graphs'
latency on 1, 4 and 10 s of speech (1 thread, interleaved rounds, ratio to the teacher). ``edgeser bench
--folds`` reads this file.

    python -m edgeser_benchmarks.studies.student_folds --teacher runs/tiny-l2 --blocks 2 --pool 4 --epochs 6 --int8 \\
        --work runs/student-p4 --out benchmarks/results/student_folds.json

The last fold run (``--folds``) also gets its student's head (trained on that fold's 16 actors) as a complete
bundle, ``WORK/fold-K/full``, for ``edgeser bench``: every fold's student has the same architecture, so its latency is
the student's.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeser import EmotionRecognizer
from edgeser.audio import load_audio
from edgeser.datasets import load_ravdess
from edgeser.metrics import confusion_matrix, unweighted_accuracy, weighted_accuracy
from edgeser_benchmarks.provenance import write_result
from edgeser_benchmarks.stats import paired_bootstrap_ua
from edgeser_benchmarks.studies.precision_folds import ACCURACY, ROW, report
from edgeser_benchmarks.suite import machine
from edgeser_benchmarks.timing import encoder_latency
from edgeser_export.default_model import DATA, TRAIN, VARIANTS
from edgeser_export.distill_whisper import StudentConfig, distil, save_student, teacher_frames, training_audio
from edgeser_export.features import compute
from edgeser_export.model import FusionConfig
from edgeser_export.train import predict, train_ensemble

TEACHER = "default"


def student_name(config: StudentConfig) -> str:
    return (f"student: {config.blocks} block{'s' if config.blocks > 1 else ''}, "
            f"{50 / config.pool:g} frames/s (distilled)")


def student_bundle(k: int, held: set[str], teacher: EmotionRecognizer, init: str, config: StudentConfig,
                   work: Path, cache: dict[Path, np.ndarray]) -> Path:
    """Fold ``k``'s student, distilled and exported once (``WORK/fold-K/bundle``); reused when present."""
    from edgeser_export.pipeline import export_bundle
    from edgeser_export.sources import load_speech

    folder, bundle = work / f"fold-{k}" / "encoder", work / f"fold-{k}" / "bundle"
    if not (folder / "student.json").is_file():
        paths = training_audio(DATA, held)
        waves = [load_audio(p) for p in paths]
        missing = [i for i, p in enumerate(paths) if p not in cache]  # the teacher's frames, once per recording
        for i, frames in zip(missing, teacher_frames(teacher, [waves[i] for i in missing]), strict=True):
            cache[paths[i]] = frames
        student, losses = distil(load_speech(init).model, waves, [cache[p] for p in paths], config,
                                 progress=lambda e, loss: print(f"fold {k}, epoch {e + 1}: loss {loss:.4f}"))
        save_student(student, folder.parent, {"teacher": str(teacher.bundle.path), "init": init,
                                              "held_out": sorted(held), "recordings": len(paths),
                                              "settings": asdict(config),
                                              "loss_per_epoch": [round(x, 5) for x in losses]})
    if not (bundle / "bundle.json").is_file():
        export_bundle(bundle, speech=load_speech(folder), layers=str(config.blocks), overwrite=True, progress=print)
    return bundle


def int8_bundle(k: int, bundle: Path, ds: Any, train_groups: set[str], work: Path) -> Path:
    """Fold ``k``'s student in static INT8 (``WORK/fold-K/int8``), calibrated on 32 clips of the fold's training
    actors only (as ``edgeser quantize --precision int8 --graphs speech`` does); reused when present."""
    from edgeser_calibration.sets import build
    from edgeser_export.quantize import QuantizeConfig, quantize_bundle

    out = work / f"fold-{k}" / "int8"
    if not (out / "bundle.json").is_file():
        train = ds.subset([i for i, u in enumerate(ds.utterances) if u.group in train_groups])
        cset = build(train, work / f"fold-{k}" / "calibration", n=32, seed=0, overwrite=True)
        quantize_bundle(bundle, out, QuantizeConfig(precision="int8", graphs=("speech",)), cset, None,
                        overwrite=True, progress=print)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", type=Path, required=True, help="the default's encoder bundle (one exposed layer)")
    ap.add_argument("--init", default="whisper-tiny.en")
    ap.add_argument("--epochs", type=int, default=StudentConfig.epochs)
    ap.add_argument("--blocks", type=int, default=StudentConfig.blocks, help="teacher blocks the student keeps")
    ap.add_argument("--pool", type=int, default=StudentConfig.pool, help="frames averaged into one before the blocks")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--folds", default="1,2,3,4,5", help="which of the five folds to run (e.g. 1 for a quick look; the "
                    "result then says how many utterances it scored)")
    ap.add_argument("--int8", action="store_true", help="also score each fold's student in static INT8, under the "
                    "head trained on its FP32 frames (the shipped path of a quantized student)")
    ap.add_argument("--work", type=Path, default=Path("runs/student"))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    config = StudentConfig(blocks=args.blocks, pool=args.pool, epochs=args.epochs)
    STUDENT = student_name(config)
    INT8 = f"{STUDENT}, static INT8"
    ds = load_ravdess(DATA)
    labels = ds.label_ids()
    groups = np.array([u.group for u in ds.utterances])
    teacher = EmotionRecognizer.from_bundle(args.teacher)
    teacher_items = compute(teacher, ds, ("frame",), False, args.work / "cache").items
    pooled = {name: np.full(len(ds), -1) for name in (TEACHER, STUDENT, *([INT8] if args.int8 else []))}
    cache: dict[Path, np.ndarray] = {}
    bundles = {}
    recs = {TEACHER: teacher}  # the student's is the last fold's

    def head(items: list[dict[str, np.ndarray]], tr: np.ndarray) -> Any:
        fusion = FusionConfig(speech_dim=items[0]["frame"].shape[1], text_dim=384, num_classes=len(ds.labels),
                              labels=ds.labels, **VARIANTS[ROW])
        return train_ensemble(fusion, [items[i] for i in tr], labels[tr], replace(TRAIN, seeds=args.seeds))

    chosen = sorted({int(k) for k in args.folds.split(",")})
    if not chosen or not set(chosen) <= {1, 2, 3, 4, 5}:
        raise SystemExit(f"--folds takes fold numbers 1-5, got {args.folds!r}")
    for k, (tr, te) in enumerate(ds.folds(5), start=1):
        if k not in chosen:
            continue
        held = set(groups[te].tolist())
        bundles[k] = student_bundle(k, held, teacher, args.init, config, args.work, cache)
        recs[STUDENT] = student = EmotionRecognizer.from_bundle(bundles[k])
        items = compute(student, ds, ("frame",), False, args.work / "cache").items
        for name, source in ((TEACHER, teacher_items), (STUDENT, items)):
            model = head(source, tr)
            pooled[name][te] = predict(model, [source[i] for i in te]).argmax(1)
        if args.int8:  # the FP32 student's head (``model``, the loop's last) on the INT8 student's frames
            quantized = int8_bundle(k, bundles[k], ds, set(groups[tr].tolist()), args.work)
            recs[INT8] = EmotionRecognizer.from_bundle(quantized)
            q_items = compute(recs[INT8], ds, ("frame",), False, args.work / "cache").items
            pooled[INT8][te] = predict(model, [q_items[i] for i in te]).argmax(1)
        if k == chosen[-1]:
            from edgeser_export.pipeline import add_fusion

            add_fusion(bundles[k], model, args.work / f"fold-{k}" / "full", layer=0, overwrite=True, progress=print,
                       provenance={"dataset": "ravdess (4-class)", "train_groups": sorted(set(groups[tr].tolist())),
                                   "held_out_groups": sorted(held), "configuration": ROW,
                                   "train": asdict(replace(TRAIN, seeds=args.seeds))})
        uas = {n: unweighted_accuracy(confusion_matrix(labels[te], p[te], 4)) for n, p in pooled.items()}
        print(f"fold {k}: " + "; ".join(f"{n} UA {100 * ua:.1f}" for n, ua in uas.items()))
    last = bundles[chosen[-1]]
    scored = pooled[TEACHER] >= 0
    rows: dict[str, Any] = {}
    for name, pred in pooled.items():
        cm = confusion_matrix(labels[scored], pred[scored], 4)
        manifest = recs[name].bundle.manifest
        where = args.teacher if name == TEACHER else last if name == STUDENT else last.parent / "int8"
        rows[name] = {"bundle": str(where), "student": name != TEACHER,
                      "precision": "int8" if name == INT8 else "fp32",
                      **({"head_from": "the FP32 student"} if name == INT8 else {}),
                      "speech_mb": round(manifest.files[manifest.speech.graph].bytes / 1e6, 1),  # type: ignore[union-attr]
                      "pooled_ua": unweighted_accuracy(cm), "pooled_wa": weighted_accuracy(cm),
                      "minus_fp32": paired_bootstrap_ua(labels[scored], pred[scored], pooled[TEACHER][scored], 4)}
    timed = {TEACHER: args.teacher, STUDENT: last, **({INT8: last.parent / "int8"} if args.int8 else {})}
    latency = encoder_latency(timed, ds, TEACHER, args.repeats)
    report(rows, latency, "the teacher")
    students = {k: json.loads((b.parent / "encoder" / "student.json").read_text()) for k, b in bundles.items()}
    accuracy = ACCURACY if len(chosen) == 5 else \
        f"fold{'s' if len(chosen) > 1 else ''} {','.join(map(str, chosen))} only ({int(scored.sum())})"
    result = {"protocol": (__doc__ or "").split("\n\n")[1], "accuracy": accuracy, "folds": chosen, "machine": machine(),
              "seeds": args.seeds, "row": ROW, "student": asdict(config), "students": students, "variants": rows,
              "latency_1_thread": latency, "truth": labels[scored].tolist(),
              "predictions": {n: p[scored].tolist() for n, p in pooled.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
