"""Multi-level fusion of speech and text embeddings (after Zhao, Wang & Wang, Interspeech 2022).

Speech comes at up to four granularities: encoder frames, and frames mean-pooled over each phone,
syllable and word (``edgeser.alignment.pooling``). Text is the BERT token embeddings.

- Early fusion: for each speech level, a coattention block (speech attends to text, text attends to
  speech; residual + LayerNorm) whose outputs are mean-pooled over valid positions; the pooled vectors
  of all levels are concatenated and classified.
- Late fusion: a speech-only head (masked means of the projected levels) and a text-only head, combined
  at the score level (log-probabilities) with learned weights.
- The final scores mix the early and late log-probabilities with learned weights.

Every part is switchable (levels, early, late, text) for the ablation. Inputs are padded batches with
boolean masks (true = real position); every mask row must have at least one true position.

A :class:`FusionEnsemble` averages several models of one configuration (trained with different seeds):
on a few hundred utterances a single head's UA moves by several points with its seed, and the average of
five is steadier and, on RAVDESS, better than the typical member.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import torch
from torch import nn

from edgeser.errors import InputError

LEVELS = ("frame", "phone", "syllable", "word")
POOLINGS = ("mean", "mean+std", "statistics")
MIXES = ("softmax", "residual")


@dataclass(frozen=True)
class FusionConfig:
    """Sizes and switches of a :class:`FusionModel`."""

    speech_dim: int
    text_dim: int
    num_classes: int = 4
    dim: int = 128
    heads: int = 4
    dropout: float = 0.1
    levels: tuple[str, ...] = LEVELS
    early: bool = True
    late: bool = True
    use_text: bool = True
    labels: tuple[str, ...] = field(default=("neutral", "happy", "angry", "sad"))
    pooling: str = "mean"
    """How the late speech branch pools each level:

    - ``"mean"`` (the paper's): the mean of the projected positions (each position layer-normed and projected
      to ``dim``);
    - ``"mean+std"``: the mean and the standard deviation of the projected positions, as in x-vectors;
    - ``"statistics"``: the mean and the standard deviation of each *encoder* dimension over the positions,
      z-scored with the training utterances' statistics (fixed in the graph; :meth:`FusionModel.fit_statistics`),
      as a linear probe of a frozen encoder reads it. On Whisper's frames this is the head that reaches the
      probe's accuracy (``edgeser_benchmarks.studies.ravdess_folds``): per-position layer norms mix Whisper's few large
      dimensions into all the others."""
    mix: str = "softmax"
    """How the branch scores (log-probabilities) are combined:

    - ``"softmax"`` (the paper's): a weighted sum, weights the softmax of learned logits starting even;
    - ``"residual"``: the late speech branch's scores plus each other branch's times a learned gate that starts
      at 0, so the fused model starts as the speech model and moves only as far as the training loss pays for
      against weight decay (which pulls the gates back to 0). Where text tells nothing about the emotion (RAVDESS
      has two sentences), the early and text branches then cannot pull a good speech branch down with what they
      overfit on the training speakers. Needs the late speech branch."""

    def __post_init__(self) -> None:
        if self.mix not in MIXES:
            raise InputError(f"mix must be one of {MIXES}, got {self.mix!r}")
        if self.mix == "residual" and not (self.late and self.levels):
            raise InputError("mix='residual' adds the other branches to the late speech branch: it needs late=True "
                             "and speech levels")
        if self.pooling not in POOLINGS:
            raise InputError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        unknown = set(self.levels) - set(LEVELS)
        if unknown:
            raise InputError(f"levels must be a subset of {LEVELS}, got {self.levels}")
        if not self.levels and (self.early or not self.use_text):
            raise InputError("without speech levels only the text-only head remains: use early=False, use_text=True")
        if not (self.early or self.late):
            raise InputError("enable early fusion, late fusion, or both")
        if self.early and not self.use_text:
            raise InputError("early fusion needs text (use_text=True); for speech only, use late=True, early=False")
        if self.dim % self.heads:
            raise InputError(f"dim {self.dim} must be divisible by heads {self.heads}")
        if len(self.labels) != self.num_classes:
            raise InputError(f"{len(self.labels)} labels for {self.num_classes} classes")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["levels"], d["labels"] = list(self.levels), list(self.labels)
        for option, default in (("pooling", "mean"), ("mix", "softmax")):
            if d[option] == default:  # configs written before the option existed stay as they were
                del d[option]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FusionConfig:
        return cls(**{**d, "levels": tuple(d["levels"]), "labels": tuple(d["labels"])})


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` ``(batch, length, dim)`` over positions where ``mask`` ``(batch, length)`` is true."""
    w = mask.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(1) / w.sum(1).clamp(min=1.0)


def masked_mean_std(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[mean, std]`` of ``x`` over the positions where ``mask`` is true: ``(batch, 2 * dim)``."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean[:, None, :]) ** 2, mask)
    return torch.cat([mean, torch.sqrt(var + 1e-6)], dim=-1)


class Attention(nn.Module):
    """Multi-head attention of ``query`` over ``context`` with a key mask.

    Written with shape-free reshapes (``unflatten``) rather than ``nn.MultiheadAttention``, whose
    reshapes the TorchScript ONNX exporter freezes at the trace shape.
    """

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
        q = self.query(query).unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (batch, heads, queries, d)
        k, v = self.key_value(context).unflatten(-1, (2, self.heads, -1)).permute(2, 0, 3, 1, 4)
        bias = torch.zeros_like(context_mask, dtype=q.dtype).masked_fill(~context_mask, float("-inf"))
        out = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias[:, None, None, :],
                                                         dropout_p=self.dropout if self.training else 0.0)
        result: torch.Tensor = self.out(out.transpose(1, 2).flatten(2))
        return result


class CoAttention(nn.Module):
    """Speech attends to text and text to speech; returns both, pooled over valid positions."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.speech_to_text = Attention(dim, heads, dropout)
        self.text_to_speech = Attention(dim, heads, dropout)
        self.norm_speech = nn.LayerNorm(dim)
        self.norm_text = nn.LayerNorm(dim)

    def forward(self, speech: torch.Tensor, speech_mask: torch.Tensor, text: torch.Tensor,
                text_mask: torch.Tensor) -> torch.Tensor:
        s = self.speech_to_text(speech, text, text_mask)
        t = self.text_to_speech(text, speech, speech_mask)
        s = self.norm_speech(speech + s)
        t = self.norm_text(text + t)
        return torch.cat([masked_mean(s, speech_mask), masked_mean(t, text_mask)], dim=-1)


def _classifier(inp: int, dim: int, classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(inp, dim), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(dim, classes))


class FusionModel(nn.Module):
    """Early + late fusion over the configured speech levels and text.

    ``forward`` takes, for each level in ``config.levels``, ``(features, mask)``, then text
    ``(tokens, mask)``, as keyword arguments named ``<level>``, ``<level>_mask``, ``text``, ``text_mask``,
    and returns a dict of log-probabilities: ``scores`` (final), and ``early``, ``speech``, ``text``
    for the branches that are enabled.
    """

    statistics_shift: torch.Tensor  # buffers of statistics pooling (registered only when the config pools so)
    statistics_scale: torch.Tensor

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.config = c = config
        projected = c.early or c.pooling != "statistics"  # statistics pooling reads the encoder's own dimensions
        self.speech_proj = nn.ModuleDict({lv: nn.Sequential(nn.LayerNorm(c.speech_dim), nn.Linear(c.speech_dim, c.dim))
                                          for lv in (c.levels if projected else ())})
        if c.use_text:
            self.text_proj = nn.Sequential(nn.LayerNorm(c.text_dim), nn.Linear(c.text_dim, c.dim))
        if c.early:
            self.coattention = nn.ModuleDict({lv: CoAttention(c.dim, c.heads, c.dropout) for lv in c.levels})
            self.early_head = _classifier(2 * c.dim * len(c.levels), c.dim, c.num_classes, c.dropout)
        if c.late:
            if c.levels:
                per_level = {"mean": c.dim, "mean+std": 2 * c.dim, "statistics": 2 * c.speech_dim}[c.pooling]
                width = per_level * len(c.levels)
                if c.pooling == "statistics":  # z-scores of the pooled statistics; set by fit_statistics
                    self.register_buffer("statistics_shift", torch.zeros(width))
                    self.register_buffer("statistics_scale", torch.ones(width))
                self.speech_head = _classifier(width, c.dim, c.num_classes, c.dropout)
            if c.use_text:
                self.text_head = _classifier(c.dim, c.dim, c.num_classes, c.dropout)
        branches = int(c.early) + int(c.late) * (int(bool(c.levels)) + int(c.use_text))
        # softmax: logits of the branch weights; residual: the gates of the branches other than speech
        self.mix = nn.Parameter(torch.zeros(branches if c.mix == "softmax" else branches - 1))

    def branch_scores(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c = self.config
        speech = {lv: self.speech_proj[lv](inputs[lv]) for lv in self.speech_proj}
        masks = {lv: inputs[f"{lv}_mask"] for lv in c.levels}
        out: dict[str, torch.Tensor] = {}
        if c.use_text:
            text, text_mask = self.text_proj(inputs["text"]), inputs["text_mask"]
        if c.early:
            fused = [self.coattention[lv](speech[lv], masks[lv], text, text_mask) for lv in c.levels]
            out["early"] = torch.log_softmax(self.early_head(torch.cat(fused, dim=-1)), dim=-1)
        if c.late:
            if c.levels:
                if c.pooling == "statistics":
                    pooled = (self.speech_statistics(inputs) - self.statistics_shift) / self.statistics_scale
                else:
                    pool = masked_mean_std if c.pooling == "mean+std" else masked_mean
                    pooled = torch.cat([pool(speech[lv], masks[lv]) for lv in c.levels], dim=-1)
                out["speech"] = torch.log_softmax(self.speech_head(pooled), dim=-1)
            if c.use_text:
                out["text"] = torch.log_softmax(self.text_head(masked_mean(text, text_mask)), dim=-1)
        return out

    def speech_statistics(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[mean, std]`` of each encoder dimension over each level's valid positions, levels concatenated."""
        return torch.cat([masked_mean_std(inputs[lv], inputs[f"{lv}_mask"]) for lv in self.config.levels], dim=-1)

    @property
    def needs_statistics(self) -> bool:
        """Whether :meth:`fit_statistics` must see the training utterances before training."""
        return self.config.late and bool(self.config.levels) and self.config.pooling == "statistics"

    @torch.no_grad()
    def fit_statistics(self, batches: Iterable[dict[str, torch.Tensor]]) -> None:
        """Set the z-scoring of statistics pooling from the training utterances (``batches`` of model inputs)."""
        pooled = torch.cat([self.speech_statistics(b) for b in batches])
        self.statistics_shift.copy_(pooled.mean(0))
        self.statistics_scale.copy_(pooled.std(0, unbiased=False) + 1e-5)

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        branches = self.branch_scores(inputs)
        if self.config.mix == "residual":
            others = [v for k, v in branches.items() if k != "speech"]
            mixed = branches["speech"]
            if others:
                mixed = mixed + (self.mix[:, None, None] * torch.stack(others, dim=0)).sum(0)
        else:
            weights = torch.softmax(self.mix, dim=0)
            mixed = (weights[:, None, None] * torch.stack(list(branches.values()), dim=0)).sum(0)
        return {"scores": torch.log_softmax(mixed, dim=-1), **branches}

    def input_names(self) -> list[str]:
        names = [n for lv in self.config.levels for n in (lv, f"{lv}_mask")]
        return names + (["text", "text_mask"] if self.config.use_text else [])


class FusionEnsemble(nn.Module):
    """Models of one configuration whose probabilities are averaged, with :class:`FusionModel`'s interface.

    Every output (the final scores and each branch) is the log of the members' mean probability, so an
    ensemble trains, predicts and exports (one fusion graph) wherever a single model does.
    """

    def __init__(self, members: Sequence[FusionModel]) -> None:
        super().__init__()
        if not members:
            raise InputError("an ensemble needs at least one member")
        if any(m.config != members[0].config for m in members):
            raise InputError("every member of an ensemble must have the same FusionConfig")
        self.config = members[0].config
        self.members = nn.ModuleList(members)

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = [member(**inputs) for member in self.members]
        return {k: torch.logsumexp(torch.stack([o[k] for o in outputs]), dim=0) - math.log(len(outputs))
                for k in outputs[0]}

    @property
    def models(self) -> list[FusionModel]:
        """The members, in order."""
        return [cast(FusionModel, m) for m in self.members]

    def input_names(self) -> list[str]:
        return self.models[0].input_names()
