"""A smaller, faster Whisper student distilled from the default's encoder (tiny.en to block 2).

The student keeps Whisper's front end (log-mel, the two convolutions, the positional embeddings), then
averages the frames in pairs (25 frames/s instead of 50) and runs fewer blocks (by default one): about a
third of the teacher's work. It starts from the teacher's own weights (front end and block 1) and is trained
to reproduce the teacher's frames of the layer the head reads, pair-averaged the same way and put through the
teacher's final layer norm (the student's last block ends in that norm, as Whisper's last block does: a
per-frame norm cannot follow the raw residual stream's frame-to-frame scale), as mean squared error on each
dimension z-scored with the teacher's statistics over the training audio (the statistics the head's pooling
reads). No labels are used: any speech will do, and the recordings of the speakers an
evaluation holds out are left out (``--holdout``).

    python -m edgeser_export.distill_whisper --teacher runs/tiny-l2 --init whisper-tiny.en \\
        --data ../shared/data/ravdess --holdout 1-4 --out runs/student/fold-1
    edgeser export --speech runs/student/fold-1/encoder --layers 1 --out runs/student/fold-1/bundle

``--librispeech ../shared/data/librispeech`` adds 52 minutes of read English from 251 speakers (or, without
``--data``, is all the student hears: speech of no emotion corpus, so one student serves every fold and every
left-out corpus). ``--data`` may be given several times, one corpus in RAVDESS's layout each (EmoDB and TurEV
share it); an evaluation then needs one student per held-out fold and per left-out corpus, each distilled
without the audio it scores:

    python -m edgeser_export.distill_whisper --librispeech ../shared/data/librispeech \
        --data ../shared/data/ravdess --data ../shared/data/emodb --data ../shared/data/turev --holdout 1-4 \
        --blocks 2 --pool 2 --epochs 3 --out runs/students/fold-1

``--epochs 0`` trains nothing: the teacher's first ``--blocks`` blocks run over frames pooled by ``--pool`` as they
are (no teacher bundle, no data needed), a student whose head is then trained on its own frames.

``OUT/encoder`` is a ``WhisperEncoder`` folder (``config.json`` with :data:`edgeser_export.whisper.FRAME_POOL`, the
weights, and ``student.json``: teacher, data, settings, loss per epoch), which ``edgeser export --speech``
reads like any Whisper checkpoint. Seeded; written atomically (a temporary folder renamed into place).
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import track

from edgeser import EmotionRecognizer
from edgeser.audio import load_audio
from edgeser.datasets import load_ravdess, ravdess_unscored
from edgeser.errors import InputError
from edgeser_export.train import collate
from edgeser_export.whisper import FRAME_POOL, WhisperSpeechGraph, pool_frames


@dataclass(frozen=True)
class StudentConfig:
    blocks: int = 1
    """Teacher blocks the student keeps (its first ones), as initial weights."""
    pool: int = 2
    """Frames averaged into one before the blocks (2: 25 frames/s)."""
    epochs: int = 8
    """0: no training at all (the teacher's first ``blocks`` blocks over pooled frames, as they are)."""
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.blocks < 1 or self.pool < 1 or self.epochs < 0 or self.batch_size < 1 or not self.lr > 0:
            raise InputError(f"blocks, pool and batch_size must be >= 1, epochs >= 0 and lr > 0, got {self}")


def make_student(teacher: Any, config: StudentConfig) -> Any:
    """A ``WhisperEncoder`` holding the teacher's front end and first ``config.blocks`` blocks (copies), its
    config marked with :data:`FRAME_POOL`."""
    student = copy.deepcopy(teacher)
    if config.blocks > len(student.layers):
        raise InputError(f"the teacher has {len(student.layers)} blocks, the student asks for {config.blocks}")
    student.layers = student.layers[: config.blocks]
    student.config.encoder_layers = config.blocks
    setattr(student.config, FRAME_POOL, config.pool)
    return student.train()


def teacher_frames(teacher: EmotionRecognizer, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The teacher bundle's frames of its one exposed layer (the layer the head reads), per wave."""
    if len(teacher.speech.exposed_layers) != 1:
        raise InputError(f"the teacher bundle exposes layers {teacher.speech.exposed_layers}; export it with the "
                         "one layer the student should learn (e.g. --layers 2)")
    out = []
    for w in track(waves, description="teacher frames"):
        hidden, _ = teacher.encode(w, sample_rate=16000).item(0)
        out.append(hidden[0])
    return out


def _batch(waves: Sequence[np.ndarray], targets: Sequence[np.ndarray], pool: int
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero-padded raw audio and its int64 mask (Whisper takes audio unnormalised), and the teacher's frames padded
    (:func:`edgeser_export.train.collate`) and pooled as the student pools its own."""
    longest = max(w.size for w in waves)
    audio = np.zeros((len(waves), longest), np.float32)
    mask = np.zeros((len(waves), longest), np.int64)
    for i, w in enumerate(waves):
        audio[i, : w.size], mask[i, : w.size] = w, 1
    padded = collate([{"frame": t} for t in targets], ["frame"])
    pooled, valid = pool_frames(padded["frame"], padded["frame_mask"], pool)
    return torch.from_numpy(audio), torch.from_numpy(mask), pooled, valid


def distil(teacher_encoder: Any, waves: Sequence[np.ndarray], targets: Sequence[np.ndarray], config: StudentConfig,
           progress: Callable[[int, float], None] | None = None) -> tuple[Any, list[float]]:
    """Train the student (:func:`make_student`) to reproduce ``targets`` (the teacher's frames of each wave)
    through the teacher's final layer norm.

    Returns the student (eval mode) and the mean loss of each epoch.
    """
    with torch.no_grad():
        targets = [teacher_encoder.layer_norm(torch.from_numpy(np.asarray(t, np.float32))).numpy() for t in targets]
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    student = make_student(teacher_encoder, config)
    graph = WhisperSpeechGraph(student, layers=(config.blocks,))
    scale = torch.from_numpy((np.concatenate(list(targets)).std(0) + 1e-5).astype(np.float32))
    opt = torch.optim.AdamW(graph.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    order = np.argsort([w.size for w in waves])  # batches of similar lengths: little padding
    batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    losses = []
    for epoch in range(config.epochs):
        graph.train()
        total, count = 0.0, 0
        for b in rng.permutation(len(batches)):
            idx = batches[b]
            audio, mask, target, valid = _batch([waves[i] for i in idx], [targets[i] for i in idx], config.pool)
            out = graph(audio, mask)[:, 0]
            n = min(out.shape[1], target.shape[1])  # equal by construction; guarded
            err = (((out[:, :n] - target[:, :n]) / scale) ** 2).mean(-1)
            w = valid[:, :n].to(err.dtype)
            loss = (err * w).sum() / w.sum().clamp(min=1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + float(loss.detach()) * len(idx), count + len(idx)
        losses.append(total / count)
        if progress is not None:
            progress(epoch, losses[-1])
    return student.eval(), losses


def save_student(student: Any, out: Path, record: dict[str, Any]) -> Path:
    """``out/encoder``: the student's ``save_pretrained`` folder plus ``student.json``, written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".encoder.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    student.save_pretrained(tmp)
    (tmp / "student.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    final = out / "encoder"
    shutil.rmtree(final, ignore_errors=True)
    tmp.replace(final)
    return final


def actors(spec: str) -> set[str]:
    """``"1-4"`` or ``"1,2,3"`` -> RAVDESS group names ``Actor_01`` ..."""
    out: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out |= set(range(int(lo), int(hi or lo) + 1))
    return {f"Actor_{i:02d}" for i in out}


def training_audio(root: Path, holdout: set[str]) -> list[Path]:
    """Every recording of a corpus in RAVDESS's layout (all its emotions: no labels are used) except the held-out
    speakers' (``Actor_01`` ... for RAVDESS)."""
    scored = [u.path for u in load_ravdess(root).utterances if u.path is not None and u.group not in holdout]
    others = [p for actor, paths in ravdess_unscored(root).items() if actor not in holdout for p in paths]
    return sorted(scored + others)


def librispeech_audio(root: Path) -> list[Path]:
    """Every recording of the LibriSpeech excerpt (``manifest.csv``: 251 speakers, 52 min of read English): speech
    that no emotion corpus, fold or left-out corpus contains, so one student serves every evaluation."""
    import csv

    manifest = root / "manifest.csv"
    if not manifest.is_file():
        raise InputError(f"{manifest}: not found; --librispeech takes the folder that holds LibriSpeech's manifest.csv")
    with open(manifest, newline="") as f:
        return sorted(root / r["path"] for r in csv.DictReader(f))


def run(out: Path, config: StudentConfig, teacher: str | Path = "default", init: str | None = None,
        data: Sequence[Path] = (), librispeech: Path | None = None, holdout: str = "",
        progress: Callable[[str], None] = print) -> Path:
    """Distil ``teacher``'s speech graph (a bundle exposing the one layer to learn; ``"default"``: the shipped
    default) into a student at ``out`` (its ``WhisperEncoder`` folder), on the RAVDESS-layout corpora ``data``
    (less the ``holdout`` speakers) and/or ``librispeech``; ``init`` names the teacher's encoder for ``edgeser
    export --speech`` (default: the one the teacher's bundle records). With ``config.epochs == 0`` nothing is
    learned and no data is read."""
    from edgeser_export.sources import load_speech

    if config.epochs and not data and librispeech is None:
        raise InputError("nothing to distil on: give --librispeech (unlabelled speech) and/or --data (a corpus in "
                         "RAVDESS's layout), or --epochs 0")
    rec = EmotionRecognizer.from_bundle(teacher) if config.epochs or init is None else None
    if init is None:
        assert rec is not None
        init = rec.speech.provenance.get("source", {}).get("name")
        if not init:
            raise InputError(f"{teacher}: its bundle does not record which encoder it was exported from; name it "
                             "with --init (such as whisper-base)")
    if config.epochs == 0:  # nothing to learn: no teacher frames, no data
        student = make_student(load_speech(init).model, config).eval()
        return save_student(student, out, {"init": init, "settings": asdict(config)})
    assert rec is not None
    held = actors(holdout) if holdout else set()
    paths = [p for root in data for p in training_audio(root, held)] + (
        librispeech_audio(librispeech) if librispeech is not None else [])
    t0 = time.perf_counter()
    waves = [load_audio(p) for p in paths]
    progress(f"teacher frames of {len(waves)} recordings ({sum(w.size for w in waves) / 16e3 / 60:.0f} min)")
    targets = teacher_frames(rec, waves)
    student, losses = distil(load_speech(init).model, waves, targets, config,
                             progress=lambda e, loss: progress(f"epoch {e + 1}/{config.epochs}: loss {loss:.4f}"))
    record = {"teacher": str(teacher), "teacher_speech_sha256": rec.speech_sha256, "init": init,
              "data": [str(root) for root in data],
              "librispeech": str(librispeech) if librispeech is not None else None,
              "held_out": sorted(held), "recordings": len(paths), "seconds": round(sum(w.size for w in waves) / 16e3),
              "settings": asdict(config), "loss_per_epoch": [round(x, 5) for x in losses],
              "train_s": round(time.perf_counter() - t0, 1)}
    return save_student(student, out, record)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="default", help="a bundle exposing the one layer to learn (default: the "
                    "shipped default)")
    ap.add_argument("--init", default=None, help="the teacher's encoder (edgeser export --speech); default: the one "
                    "the teacher's bundle records")
    ap.add_argument("--data", type=Path, action="append", default=[], help="a corpus in RAVDESS's layout (all of "
                    "its recordings are used, labels not; repeat for several; not needed with --epochs 0)")
    ap.add_argument("--librispeech", type=Path, help="unlabelled read speech to distil on as well (or alone): the "
                    "folder of LibriSpeech's manifest.csv (../shared/data/librispeech)")
    ap.add_argument("--holdout", default="", help="speakers left out, e.g. 1-4 (RAVDESS actors)")
    ap.add_argument("--blocks", type=int, default=1)
    ap.add_argument("--pool", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=8, help="0: no training, the teacher's blocks over pooled frames")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    config = StudentConfig(blocks=args.blocks, pool=args.pool, epochs=args.epochs, seed=args.seed)
    try:
        path = run(args.out, config, args.teacher, args.init, args.data, args.librispeech, args.holdout)
    except InputError as e:
        ap.error(str(e))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
