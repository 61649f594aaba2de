"""Knowledge distillation of a speech encoder into a smaller student that still segments.

The teacher is a ``Wav2Vec2ForCTC`` folder with an emotion head beside it (``emotion_head.pt``, as
:func:`edgeser_export.encoder.save` writes; e.g. wav2vec2-base fine-tuned multi-task on a GPU, or the compact
encoder). The student has the same architecture with fewer layers and/or less width. Per batch:

- emotion: KL divergence between the teacher's and the student's emotion distributions at temperature T;
- CTC: KL divergence between their per-frame CTC distributions (same frame rate, same vocabulary), so the
  student keeps the teacher's segmentation;
- hidden states: mean squared error between the student's last hidden layer, projected to the teacher's
  width by a learned linear map (dropped after training), and the teacher's;
- labels, where a labelled dataset is given and ``label_weight > 0``: cross-entropy on the emotion labels.

Unlabelled audio works: only the label term needs labels. Seeded; a checkpoint after every epoch;
re-running with the same ``--out`` resumes.

Config (TOML or JSON; paths relative to the file)::

    teacher = "runs/encoder/encoder"
    data = ["../shared/data/ravdess/labels.csv", "more_audio/"]   # datasets or folders of audio files
    [student]
    num_hidden_layers = 2
    hidden_size = 128
    intermediate_size = 512
    num_attention_heads = 4
    [train]
    epochs = 10
    batch_size = 8
    lr = 5e-4
    temperature = 2.0
    emotion_weight = 1.0
    ctc_weight = 1.0
    hidden_weight = 1.0
    label_weight = 0.0
    max_seconds = 8.0
    seed = 0
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import Wav2Vec2ForCTC

from edgeser.audio import load_audio
from edgeser.datasets import open_dataset
from edgeser.errors import DatasetError
from edgeser.model.bundle import DEFAULT_LABELS
from edgeser_export.checkpoints import load_checkpoint, resume, save_epoch
from edgeser_export.configfile import read_config
from edgeser_export.encoder import SpeechEmotionModel, batch_inputs, save

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


@dataclass(frozen=True)
class DistillTrain:
    epochs: int = 10
    batch_size: int = 8
    lr: float = 5e-4
    temperature: float = 2.0
    emotion_weight: float = 1.0
    ctc_weight: float = 1.0
    hidden_weight: float = 1.0
    label_weight: float = 0.0
    max_seconds: float = 8.0
    seed: int = 0


@dataclass(frozen=True)
class DistillConfig:
    teacher: Path
    data: tuple[Path, ...]
    student: dict[str, Any] = field(default_factory=dict)
    train: DistillTrain = field(default_factory=DistillTrain)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> DistillConfig:
        path = Path(path)
        raw = read_config(path)
        unknown = set(raw) - {"teacher", "data", "student", "train"}
        bad_train = set(raw.get("train", {})) - {f.name for f in fields(DistillTrain)}
        if unknown or bad_train or "teacher" not in raw or not raw.get("data"):
            raise DatasetError(f"{path}: needs 'teacher' and 'data'; unknown keys {sorted(unknown | bad_train)}")
        base = path.parent
        config = cls(teacher=base / raw["teacher"], data=tuple(base / d for d in raw["data"]),
                     student=dict(raw.get("student", {})), train=DistillTrain(**raw.get("train", {})))
        config.check()
        return config

    def check(self) -> None:
        """Fail before any work: the teacher folder and every data source must exist."""
        if not (self.teacher / "config.json").is_file() or not (self.teacher / "emotion_head.pt").is_file():
            raise DatasetError(f"{self.teacher}: not a teacher folder (needs config.json and emotion_head.pt, as "
                               "edgeser_export.encoder.save writes)")
        for d in self.data:
            if not d.exists():
                raise DatasetError(f"{d}: data source not found")


def load_teacher(folder: Path) -> tuple[SpeechEmotionModel, tuple[str, ...]]:
    ctc = Wav2Vec2ForCTC.from_pretrained(folder, local_files_only=True)
    head = load_checkpoint(folder / "emotion_head.pt")
    model = SpeechEmotionModel(ctc.config, num_emotions=len(head["labels"]))
    model.ctc = ctc
    model.emotion.load_state_dict(head["state_dict"])
    return model.eval(), tuple(head["labels"])


def collect(sources: tuple[Path, ...], labels: tuple[str, ...]) -> list[tuple[Path, int]]:
    """``(audio path, label id or -1)`` from datasets (labelled) and folders of audio (unlabelled)."""
    items: list[tuple[Path, int]] = []
    for src in sources:
        if src.is_dir() and not any(src.glob("labels.csv")) and not any(src.glob("Session[1-5]")):
            items += [(p, -1) for p in sorted(src.rglob("*")) if p.suffix.lower() in AUDIO_SUFFIXES]
            continue
        ds = open_dataset(src)
        items += [(u.path, labels.index(u.label) if u.label in labels else -1) for u in ds.utterances
                  if u.path is not None]
    if not items:
        raise DatasetError(f"no audio found in {[str(s) for s in sources]}")
    return items


def distill_loss(teacher: SpeechEmotionModel, student: SpeechEmotionModel, projection: nn.Module,
                 waves: list[np.ndarray], labels: list[int], t: DistillTrain) -> tuple[torch.Tensor, dict[str, float]]:
    values, mask = batch_inputs(waves)
    with torch.no_grad():
        t_logits, t_emotion, frames, t_hidden = teacher.outputs(values, mask)
    s_logits, s_emotion, _, s_hidden = student.outputs(values, mask)
    frame_mask = (torch.arange(s_logits.shape[1])[None, :] < frames[:, None]).float()
    tau = t.temperature
    kl_ctc = nn.functional.kl_div(torch.log_softmax(s_logits / tau, -1), torch.log_softmax(t_logits / tau, -1),
                                  log_target=True, reduction="none").sum(-1)
    ctc = (kl_ctc * frame_mask).sum() / frame_mask.sum() * tau**2
    emotion = nn.functional.kl_div(torch.log_softmax(s_emotion / tau, -1), torch.log_softmax(t_emotion / tau, -1),
                                   log_target=True, reduction="batchmean") * tau**2
    diff = (projection(s_hidden) - t_hidden) ** 2
    hidden = (diff.mean(-1) * frame_mask).sum() / frame_mask.sum()
    y = torch.tensor(labels)
    label = (nn.functional.cross_entropy(s_emotion[y >= 0], y[y >= 0]) if (y >= 0).any() and t.label_weight > 0
             else torch.zeros(()))
    loss = t.ctc_weight * ctc + t.emotion_weight * emotion + t.hidden_weight * hidden + t.label_weight * label
    parts = {"ctc_kl": ctc, "emotion_kl": emotion, "hidden_mse": hidden, "label_ce": label}
    return loss, {k: float(v.detach()) for k, v in parts.items()}


def distill(config: DistillConfig, out: Path, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the student; writes ``out/checkpoint.pt`` each epoch, ``out/history.json`` and, at the end,
    the student folder ``out/student`` (``edgeser export --speech out/student``)."""
    from edgeser_export.encoder import compact_config

    config.check()
    t = config.train
    torch.manual_seed(t.seed)
    rng = np.random.default_rng(t.seed)
    teacher, labels = load_teacher(config.teacher)
    for p in teacher.parameters():
        p.requires_grad_(False)
    tc = teacher.ctc.config
    base = {k: getattr(tc, k) for k in ("conv_dim", "conv_kernel", "conv_stride", "feat_extract_norm",
                                        "do_stable_layer_norm", "num_conv_pos_embeddings",
                                        "num_conv_pos_embedding_groups")}
    student_config = compact_config(**{**base, **config.student})
    if student_config.vocab_size != tc.vocab_size:
        raise DatasetError(f"student vocabulary {student_config.vocab_size} != teacher's {tc.vocab_size}")
    student = SpeechEmotionModel(student_config, num_emotions=len(labels))
    projection = nn.Linear(student_config.hidden_size, tc.hidden_size)
    params = list(student.parameters()) + list(projection.parameters())
    opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=1e-2)
    items = collect(config.data, labels)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.pt"
    modules: dict[str, nn.Module] = {"student": student, "projection": projection}
    history, start = resume(checkpoint, modules, opt)
    if start:
        rng = np.random.default_rng(t.seed + start)
        progress(f"resuming after epoch {start}")
    max_samples = int(t.max_seconds * 16000)
    waves = [load_audio(p)[:max_samples] for p, _ in items]
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        for epoch in range(start, t.epochs):
            student.train()
            order = rng.permutation(len(items))
            task = bar.add_task(f"epoch {epoch + 1}/{t.epochs}", total=len(order))
            totals: dict[str, float] = {}
            for i in range(0, len(order), t.batch_size):
                idx = order[i : i + t.batch_size]
                loss, parts = distill_loss(teacher, student, projection, [waves[j] for j in idx],
                                           [items[j][1] for j in idx], t)
                opt.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                torch.nn.utils.clip_grad_norm_(params, 5.0)
                opt.step()
                for k, v in parts.items():
                    totals[k] = totals.get(k, 0.0) + v * len(idx) / len(order)
                bar.advance(task, len(idx))
            history.append({"epoch": epoch, **{k: round(v, 5) for k, v in totals.items()}})
            progress(json.dumps(history[-1]))
            save_epoch(checkpoint, modules, opt, history, epoch)
    save(student.eval(), out / "student", labels)
    teacher_params = sum(p.numel() for p in teacher.parameters())
    student_params = sum(p.numel() for p in student.parameters())
    summary = {"teacher": str(config.teacher), "teacher_params": teacher_params, "student_params": student_params,
               "student_config": {k: v for k, v in config.student.items()}, "train": asdict(t),
               "utterances": len(items), "labelled": sum(lb >= 0 for _, lb in items), "history": history}
    (out / "history.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Distil a wav2vec2-style speech encoder (emotion logits, CTC emissions, "
                                             "hidden states) into a compact student, as configured in a TOML or "
                                             "JSON file (examples/distill-ravdess.toml). The default's Whisper "
                                             "encoder is distilled by `edgeser distill` instead.")
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, history.json, the student")
    args = ap.parse_args()
    summary = distill(DistillConfig.from_file(args.config), args.out)
    print(f"wrote {args.out / 'student'}: {summary['student_params'] / 1e6:.2f}M parameters (teacher "
          f"{summary['teacher_params'] / 1e6:.2f}M); export it with `edgeser export --speech {args.out / 'student'} "
          "--out ...`")


__all__ = ["DEFAULT_LABELS", "DistillConfig", "DistillTrain", "distill", "distill_loss", "load_teacher"]


if __name__ == "__main__":
    main()
