"""Train the compact speech encoder (phoneme CTC from hama + emotion) on RAVDESS, holding out actors.

A first, single-split experiment: train on every RAVDESS file of the training actors (all 8 emotions for
CTC; the 4-class ones also for emotion), report the emotion head's UA/WA on the held-out actors' 4-class
files after a fixed number of epochs (no choice is made on the held-out actors). Resumable: each epoch
writes a checkpoint and ``results.json``.

    python -m edgeser_export.train_encoder --holdout 17-20 --epochs 30 --out runs/encoder-holdout-17-20
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from edgeser.alignment.ctc.hama import HamaAligner
from edgeser.audio import load_audio
from edgeser.metrics import confusion_matrix, unweighted_accuracy, weighted_accuracy
from edgeser.model.bundle import DEFAULT_LABELS
from edgeser_export.checkpoints import resume, save_epoch
from edgeser_export.encoder import (
    SpeechEmotionModel,
    batch_inputs,
    compact_config,
    multitask_loss,
    save,
    teacher_targets,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess"
SMALL = dict(conv_dim=(128,) * 7, hidden_size=192, num_hidden_layers=3, num_attention_heads=4, intermediate_size=768)
"""1.9M parameters: about 80 s per epoch of RAVDESS on 2 CPU cores (the 4.8M default is ~6x slower)."""


def crop_silence(wave: np.ndarray, floor_db: float = 40.0, margin_frames: int = 5) -> np.ndarray:
    """Drop leading and trailing 20 ms frames more than ``floor_db`` below the loudest one (keep a margin)."""
    n = wave.size // 320
    level = 20 * np.log10(np.sqrt((wave[: n * 320].reshape(n, 320).astype(np.float64) ** 2).mean(1)) + 1e-9)
    keep = np.flatnonzero(level > level.max() - floor_db)
    return wave[max(0, keep[0] - margin_frames) * 320 : (keep[-1] + 1 + margin_frames) * 320]


def perturb(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gain (0.5-1.5x) and speed (0.9-1.1x, pitch and tempo together, as Kaldi's speed perturbation): new
    voices from the few training speakers. The teacher's phone sequence is unchanged by either."""
    import soxr

    speed = rng.uniform(0.9, 1.1)
    return np.asarray(soxr.resample(wave, 16000 * speed, 16000), dtype=np.float32) * rng.uniform(0.5, 1.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--holdout", default="17-20", help="held-out actor range, e.g. 17-20")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--perturb", action="store_true", help="speed perturbation (0.9-1.1x) besides gain")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    lo, hi = (int(x) for x in args.holdout.split("-"))
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    with open(DATA / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    label_index = {label: i for i, label in enumerate(DEFAULT_LABELS)}
    teacher_file = args.out / "teacher_targets.json"
    teacher_cache: dict[str, list[int]] = json.loads(teacher_file.read_text()) if teacher_file.is_file() else {}
    teacher = HamaAligner()
    train, test = [], []
    with Progress() as progress:
        task = progress.add_task("audio + teacher targets", total=len(rows))
        for r in rows:
            wave = crop_silence(load_audio(DATA / r["path"]))
            if r["path"] not in teacher_cache:
                teacher_cache[r["path"]] = teacher_targets(teacher, wave)
            item = (wave, teacher_cache[r["path"]], label_index.get(r["emotion4"], -1))
            held_out = lo <= int(r["speaker"].split("_")[1]) <= hi
            if not held_out:
                train.append(item)
            elif item[2] >= 0:
                test.append(item)
            progress.advance(task)
    teacher_file.write_text(json.dumps(teacher_cache))

    model = SpeechEmotionModel(compact_config(**SMALL), num_emotions=len(DEFAULT_LABELS))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    checkpoint = args.out / "checkpoint.pt"
    history, start = resume(checkpoint, {"model": model}, opt)
    order_by_length = np.argsort([w.size for w, _, _ in train])
    for epoch in range(start, args.epochs):
        model.train()
        t0 = time.perf_counter()
        batches = [order_by_length[i : i + args.batch_size] for i in range(0, len(train), args.batch_size)]
        rng.shuffle(batches)
        totals = {"ctc": 0.0, "emotion": 0.0}
        for idx in batches:
            waves = [perturb(train[i][0], rng) if args.perturb else train[i][0] * rng.uniform(0.5, 1.5)
                     for i in idx]
            loss, parts = multitask_loss(model, waves, [train[i][1] for i in idx], [train[i][2] for i in idx])
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            for k in totals:
                totals[k] += parts[k] / len(batches)
        model.eval()
        preds = []
        with torch.no_grad():
            for i in range(0, len(test), 16):
                values, mask = batch_inputs([w for w, _, _ in test[i : i + 16]])
                preds += model(values, mask)[1].argmax(-1).tolist()
        cm = confusion_matrix([e for _, _, e in test], preds, len(DEFAULT_LABELS))
        history.append({"epoch": epoch, **totals, "heldout_ua": unweighted_accuracy(cm),
                        "heldout_wa": weighted_accuracy(cm), "seconds": time.perf_counter() - t0})
        print(json.dumps(history[-1]))
        save_epoch(checkpoint, {"model": model}, opt, history, epoch)
        (args.out / "results.json").write_text(json.dumps({
            "holdout_actors": args.holdout, "train_files": len(train), "heldout_4class_files": len(test),
            "config": SMALL, "perturb": args.perturb, "epochs_planned": args.epochs, "history": history,
            "final": history[-1], "confusion_final": cm.tolist()}, indent=2))
    save(model, args.out / "encoder", DEFAULT_LABELS)


if __name__ == "__main__":
    main()
