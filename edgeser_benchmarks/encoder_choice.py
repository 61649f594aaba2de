"""Which encoder, which layer, which head: leave-one-corpus-out accuracy and latency, side by side in one run.

    edgeser export --speech whisper-tiny.en --layers all --out runs/whisper-tiny.en
    edgeser export --speech whisper-base --layers all --tolerance 5e-3 --out runs/whisper-base
    python -m edgeser_benchmarks.encoder_choice --bundle tiny.en=runs/whisper-tiny.en \\
        --bundle base=runs/whisper-base --work runs/encoder_choice --out benchmarks/results/encoder_choice.json

(``whisper-base``'s deepest blocks differ from torch by up to 2.8e-3 after export, over the default 1e-3 parity
tolerance: float32 rounding through six blocks, not a wrong graph; hence ``--tolerance 5e-3``.)

Each bundle exposes every layer of its encoder (0 = after the convolutions, 1.. = the transformer blocks). Every
utterance of RAVDESS, EmoDB and TurEV (the four classes) goes once through each encoder the way the shipped default
reads speech (:meth:`edgeser.EmotionRecognizer.encode_speech`: silero-vad's speech span, voiced frames only), with
one VAD pass per utterance shared by the encoders. Heads, each trained with the default's weights (each corpus
equal, its classes equal within it; :func:`edgeser_export.multicorpus.balanced_weights`):

- ``lr``: logistic regression on the mean and standard deviation of one layer's voiced frames (every layer), or of
  every layer's, concatenated (``all``);
- ``mlp``: the shipped head (an ensemble of 5 statistics-pooling MLPs) on one layer;
- ``attention``: attentive statistics pooling (Okabe et al., Interspeech 2018): a learned score per frame weights the
  mean and standard deviation of a projection of the frames, then a linear layer; over 80 ms steps (the mean of
  every 4 voiced frames, to keep its training to minutes on 2 cores), 20 epochs, an ensemble of 2 seeds.

Scored, for each: leave-one-corpus-out UA on each corpus (trained on the two others) and their mean; RAVDESS five
actor folds (trained on the other 16 actors plus EmoDB and TurEV) clean and with babble at 10 dB SNR (the same
fold heads). ``mlp`` and ``attention`` are run on the layer with the best mean LOCO UA under ``lr`` for each
encoder, and on the shipped default's layer (tiny.en block 2). Choosing a layer on the same LOCO scores flatters it
a little; every layer's row is in the file.

With ``--mlp LAYERS`` (repeatable: ``3``, ``2+3``, ...) the run scores only the shipped MLP head on the statistics of
those layers, concatenated, one row each, and skips the layer scan and attention (``encoder_layers.json``)::

    python -m edgeser_benchmarks.encoder_choice --bundle base=runs/whisper-base --mlp 3 --mlp 2+3 --mlp 3+4 \
        --mlp 2+3+4 --work runs/encoder_choice --out benchmarks/results/encoder_layers.json

Its rule, fixed before the run: a stacked reading replaces the first ``--mlp`` (the shipped layer) only if it beats
it by more than 1 point on the mean of LOCO mean UA, RAVDESS fold UA and babble-10-dB UA (the head choice's score).

Latency, in the same run: each bundle's speech graph (every layer computed: an upper bound for a graph cut at a
shallower layer) and any ``--latency NAME=BUNDLE`` (such as a graph cut at the chosen layer) on a 4 s clip, one
ONNX Runtime thread, interleaved rounds; the first ``--latency`` bundle (or the first ``--bundle``) is the
reference of the ratios. Rule, fixed before the run: the row with the best mean LOCO UA wins, except that among
rows within 1 UA point of it the fastest encoder is taken.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import track

from edgeser import EmotionRecognizer, RuntimeOptions
from edgeser.audio.vad import voicing
from edgeser.datasets import Dataset
from edgeser.metrics import confusion_matrix, unweighted_accuracy, weighted_accuracy
from edgeser.model.bundle import DEFAULT_LABELS
from edgeser_benchmarks.generalisation import conditions
from edgeser_benchmarks.head_choice import MARGIN
from edgeser_benchmarks.provenance import write_result
from edgeser_benchmarks.stats import paired_bootstrap_ua, time_interleaved
from edgeser_export.multicorpus import CORPORA, balanced_weights, cached, fit_lr, fit_mlp, load_corpus, mlp_log_probs

SHIPPED = ("base", 3)
"""The shipped default's encoder and layer (Whisper base cut after block 3; tiny.en block 2 when
``encoder_choice.json`` was measured, which names it in its ``shipped``)."""
FOLDS = 5
BABBLE = "babble 10 dB"
Fit = Callable[["Feats", np.ndarray, np.ndarray, np.ndarray], Callable[["Feats", np.ndarray], np.ndarray]]
"""(features, train rows, labels, weights) -> (features, test rows) -> log-probabilities"""


@dataclass(frozen=True)
class Feats:
    """One encoder's reading of one corpus: ``stats`` ``(n, layers, 2 * dim)`` (mean then std of the voiced frames)
    and, for attention pooling, the voiced frames themselves, float16, utterance ``i`` at
    ``frames[offsets[i]:offsets[i + 1]]`` ``(frames, layers, dim)``."""

    stats: np.ndarray
    frames: np.ndarray | None = None
    offsets: np.ndarray | None = None

    def utterance(self, i: int, layer: int) -> np.ndarray:
        assert self.frames is not None and self.offsets is not None
        return np.asarray(self.frames[self.offsets[i] : self.offsets[i + 1], layer], dtype=np.float32)


def read(recs: dict[str, EmotionRecognizer], ds: Dataset, cache: Path, tag: str = "clean",
         transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None) -> dict[str, Feats]:
    """Every encoder's :class:`Feats` of ``ds`` (one VAD pass per utterance), cached by graph hash and condition."""
    from edgeser_export.multicorpus import waves

    paths = {}
    for name, rec in recs.items():
        key = hashlib.sha256(json.dumps([rec.speech_sha256, [u.id for u in ds.utterances], tag]).encode())
        paths[name] = cache / f"{name}-{ds.name}-{tag}-{key.hexdigest()[:12]}.npz"
    if not all(p.is_file() for p in paths.values()):
        stats: dict[str, list[np.ndarray]] = {n: [] for n in recs}
        frames: dict[str, list[np.ndarray]] = {n: [] for n in recs}
        for wave in track(waves(ds, transform=transform), total=len(ds), description=f"encoding {ds.name} ({tag})"):
            voiced = voicing(wave)
            for name, rec in recs.items():
                encoded, keep = rec.encode_speech(wave, voiced)
                hidden = encoded.item(0)[0][:, keep].astype(np.float64)  # (layers, voiced frames, dim)
                stats[name].append(np.concatenate([hidden.mean(1), hidden.std(1)], axis=-1).astype(np.float32))
                frames[name].append(hidden.transpose(1, 0, 2).astype(np.float16))
        for name in recs:
            out = {"stats": np.stack(stats[name]), "frames": np.concatenate(frames[name]),
                   "offsets": np.cumsum([0] + [f.shape[0] for f in frames[name]])}
            cached(paths[name], lambda out=out: out)  # type: ignore[misc]
    feats = {}
    for name, path in paths.items():
        z = cached(path, dict)
        feats[name] = Feats(z["stats"], z.get("frames"), z.get("offsets"))
    return feats


def stats_head(layers: Sequence[int], kind: str) -> Fit:
    """``lr`` or ``mlp`` on the statistics of ``layers`` (concatenated)."""

    def fit(f: Feats, rows: np.ndarray, y: np.ndarray, w: np.ndarray) -> Callable[[Feats, np.ndarray], np.ndarray]:
        def x(g: Feats, r: np.ndarray) -> np.ndarray:
            return np.asarray(g.stats[r][:, list(layers)].reshape(r.size, -1))

        if kind == "lr":
            lr = fit_lr(x(f, rows), y, w)
            return lambda g, r: lr(x(g, r))
        model = fit_mlp(x(f, rows), y, w)
        return lambda g, r: mlp_log_probs(model, x(g, r))

    return fit


def attention_head(layer: int, seeds: int = 2, epochs: int = 20, step: int = 4) -> Fit:
    """Attentive statistics pooling over one layer's voiced frames (the mean of every ``step``), an ensemble of
    ``seeds``."""
    import torch
    from torch import nn

    class AttentiveStats(nn.Module):
        def __init__(self, dim: int, hidden: int = 128) -> None:
            super().__init__()
            self.norm, self.proj = nn.LayerNorm(dim), nn.Linear(dim, hidden)
            self.score, self.drop = nn.Linear(hidden, 1), nn.Dropout(0.2)
            self.out = nn.Linear(2 * hidden, len(DEFAULT_LABELS))

        def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
            h = nn.functional.gelu(self.proj(self.norm(x)))
            a = torch.softmax(self.score(h).squeeze(-1).masked_fill(~real, -1e9), dim=1)[..., None]
            mean = (a * h).sum(1)
            std = ((a * (h - mean[:, None]) ** 2).sum(1) + 1e-5).sqrt()
            return torch.log_softmax(self.out(self.drop(torch.cat([mean, std], dim=-1))), dim=-1)

    def coarse(x: np.ndarray) -> np.ndarray:
        n = -(-x.shape[0] // step)
        padded = np.concatenate([x, np.repeat(x[-1:], n * step - x.shape[0], axis=0)])
        out: np.ndarray = padded.reshape(n, step, -1).mean(1)
        return out

    def batch(f: Feats, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        xs = [coarse(f.utterance(int(i), layer)) for i in rows]
        t = max(x.shape[0] for x in xs)
        x = np.zeros((len(xs), t, xs[0].shape[1]), np.float32)
        real = np.zeros((len(xs), t), bool)
        for k, u in enumerate(xs):
            x[k, : u.shape[0]], real[k, : u.shape[0]] = u, True
        return torch.from_numpy(x), torch.from_numpy(real)

    def fit(f: Feats, rows: np.ndarray, y: np.ndarray, w: np.ndarray) -> Callable[[Feats, np.ndarray], np.ndarray]:
        torch.set_num_threads(2)
        models = []
        for seed in range(seeds):
            torch.manual_seed(seed)
            rng = np.random.default_rng(seed)
            model = AttentiveStats(f.stats.shape[-1] // 2)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
            for _ in range(epochs):
                model.train()
                for b in np.array_split(rng.permutation(rows.size), max(1, rows.size // 32)):
                    x, real = batch(f, rows[b])
                    nll = -model(x, real)[torch.arange(b.size), torch.from_numpy(y[b])]
                    loss = (nll * torch.from_numpy(w[b])).sum() / float(w[b].sum())
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            models.append(model.eval())

        def log_probs(g: Feats, r: np.ndarray) -> np.ndarray:
            out = []
            with torch.no_grad():
                for b in np.array_split(r, max(1, r.size // 64)):
                    x, real = batch(g, b)
                    out.append(np.mean([m(x, real).exp().numpy() for m in models], axis=0))
            result: np.ndarray = np.log(np.maximum(np.concatenate(out), 1e-12))
            return result

        return log_probs

    return fit


class Protocol:
    """Leave-one-corpus-out and RAVDESS actor folds (clean and babble at 10 dB) for one encoder's features."""

    def __init__(self, clean: dict[str, Feats], babble: Feats, y: dict[str, np.ndarray],
                 groups: dict[str, np.ndarray]) -> None:
        self.clean, self.babble, self.y, self.groups = clean, babble, y, groups
        actors = sorted(set(groups["ravdess"]))
        self.folds = [np.flatnonzero(np.isin(groups["ravdess"], [actors[i] for i in block]))
                      for block in np.array_split(np.arange(len(actors)), FOLDS)]

    def _train(self, fit: Fit, parts: dict[str, np.ndarray]) -> Callable[[Feats, np.ndarray], np.ndarray]:
        """``fit`` on ``parts`` (corpus -> rows), the corpora stacked into one :class:`Feats`."""
        names = tuple(c for c in CORPORA if parts.get(c) is not None and parts[c].size)
        stacked = self._stack(names)
        base = np.cumsum([0] + [len(self.y[c]) for c in names])
        rows = np.concatenate([base[k] + parts[c] for k, c in enumerate(names)])
        y = np.concatenate([self.y[c][parts[c]] for c in names])
        corpus = [c for c in names for _ in range(parts[c].size)]
        return fit(stacked, rows, y, balanced_weights(corpus, y))

    @functools.lru_cache(maxsize=8)  # noqa: B019 (one Protocol per encoder, kept for the run)
    def _stack(self, names: tuple[str, ...]) -> Feats:
        fs = [self.clean[c] for c in names]
        frames = [f.frames for f in fs if f.frames is not None]
        starts = [f.offsets for f in fs if f.offsets is not None]
        if len(frames) < len(fs) or len(starts) < len(fs):
            return Feats(np.concatenate([f.stats for f in fs]))
        shift = np.cumsum([0, *(x.shape[0] for x in frames)])
        offsets = np.concatenate([o[:-1] + s for o, s in zip(starts, shift, strict=False)] + [np.array([shift[-1]])])
        return Feats(np.concatenate([f.stats for f in fs]), np.concatenate(frames), offsets)

    def run(self, fit: Fit) -> dict[str, np.ndarray]:
        """Predictions: ``loco/<corpus>``, ``folds`` (RAVDESS, clean), ``babble`` (RAVDESS folds, babble 10 dB)."""
        out = {}
        for held in CORPORA:
            head = self._train(fit, {c: np.arange(len(self.y[c])) for c in CORPORA if c != held})
            out[f"loco/{held}"] = head(self.clean[held], np.arange(len(self.y[held]))).argmax(1)
        n = len(self.y["ravdess"])
        out["folds"], out["babble"] = np.zeros(n, np.int64), np.zeros(n, np.int64)
        for test in self.folds:
            parts = {c: np.arange(len(self.y[c])) for c in CORPORA}
            parts["ravdess"] = np.setdiff1d(np.arange(n), test)
            head = self._train(fit, parts)
            out["folds"][test] = head(self.clean["ravdess"], test).argmax(1)
            out["babble"][test] = head(self.babble, test).argmax(1)
        return out

    def score(self, pred: dict[str, np.ndarray]) -> dict[str, Any]:
        def ua(truth: np.ndarray, p: np.ndarray) -> float:
            return round(unweighted_accuracy(confusion_matrix(truth, p, len(DEFAULT_LABELS))), 4)

        loco = {c: {"ua": ua(self.y[c], pred[f"loco/{c}"]),
                    "wa": round(weighted_accuracy(confusion_matrix(self.y[c], pred[f"loco/{c}"],
                                                                   len(DEFAULT_LABELS))), 4)} for c in CORPORA}
        return {"loco": loco, "loco_mean_ua": round(float(np.mean([loco[c]["ua"] for c in CORPORA])), 4),
                "ravdess_folds_ua": ua(self.y["ravdess"], pred["folds"]),
                "ravdess_babble10_ua": ua(self.y["ravdess"], pred["babble"])}


def latency(bundles: dict[str, Path], seconds: float = 4.0, rounds: int = 30) -> dict[str, Any]:
    """Each speech graph on one ``seconds`` clip, one thread, interleaved; ratios to the first."""
    from edgeser_benchmarks.stats import latency_summary

    wave = (0.1 * np.random.default_rng(0).standard_normal(int(seconds * 16000))).astype(np.float32)
    recs = {n: EmotionRecognizer.from_bundle(p, RuntimeOptions.cpu(threads=1)) for n, p in bundles.items()}
    times = time_interleaved({n: functools.partial(r.encode, wave, sample_rate=16000) for n, r in recs.items()}, rounds)
    return {"clip_s": seconds, "threads": 1, "rounds": rounds,
            **latency_summary(times, next(iter(bundles)), "ratio_to_reference")}


def named(values: Sequence[str]) -> dict[str, Path]:
    out = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep:
            raise SystemExit(f"{v}: expected NAME=BUNDLE")
        out[name] = Path(path)
    return out


def minus(name: str, reference: str, preds: dict[str, dict[str, np.ndarray]], y: dict[str, np.ndarray]
          ) -> dict[str, dict[str, float]]:
    """``name``'s leave-one-corpus-out UA minus ``reference``'s on each corpus, with its paired bootstrap."""
    return {c: paired_bootstrap_ua(y[c], preds[name][f"loco/{c}"], preds[reference][f"loco/{c}"], len(DEFAULT_LABELS))
            for c in CORPORA}


def layer_list(value: str) -> list[int]:
    """``"2+3"`` -> ``[2, 3]``."""
    try:
        out = [int(v) for v in value.split("+")]
    except ValueError:
        raise SystemExit(f"--mlp {value}: expected layer numbers joined by '+', such as 2+3") from None
    if not out or min(out) < 0 or len(set(out)) != len(out):
        raise SystemExit(f"--mlp {value}: expected distinct layer numbers from 0, such as 2+3")
    return out


def stacked_result(args: argparse.Namespace, rows: dict[str, dict[str, Any]], preds: dict[str, dict[str, np.ndarray]],
                   y: dict[str, np.ndarray], ds: dict[str, Dataset], bundles: dict[str, Path]) -> None:
    """``--mlp``'s result: each row against the first (paired bootstrap per left-out corpus), and the rule."""
    enc = next(iter(bundles))
    reference = f"{enc} layers {args.mlp[0]}, mlp"
    for name, row in rows.items():
        if name != reference:
            row["minus_reference"] = minus(name, reference, preds, y)
    best = max(rows, key=lambda n: rows[n]["score"])
    chosen = best if rows[best]["score"] > rows[reference]["score"] + MARGIN else reference
    write_result(args.out, {
        "data": {c: {"utterances": len(d), "classes": d.counts()} for c, d in ds.items()},
        "reading": "silero-vad speech span, voiced frames (EmotionRecognizer.encode_speech), one VAD pass shared; "
                   "the mean and standard deviation of each listed layer, concatenated",
        "weights": "each corpus equal, its classes equal within it", "recipe": "clean (no augmented copies)",
        "rule": f"best score (mean of LOCO mean UA, RAVDESS fold UA, babble-10-dB UA); {reference} stays unless "
                f"beaten by more than {MARGIN * 100:.0f} point",
        "rows": rows, "chosen": chosen, "reference": reference})
    for name, r in rows.items():
        loco = " ".join(f"{r['loco'][c]['ua']:.3f}" for c in CORPORA)
        print(f"{name:24s} LOCO {loco} mean {r['loco_mean_ua']:.3f} | folds {r['ravdess_folds_ua']:.3f} "
              f"babble10 {r['ravdess_babble10_ua']:.3f} | score {r['score']:.3f}")
    print(f"chosen: {chosen}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", action="append", required=True, help="NAME=BUNDLE, an encoder with every layer")
    ap.add_argument("--latency", action="append", default=[], help="NAME=BUNDLE, timed beside the --bundle graphs")
    ap.add_argument("--work", type=Path, default=Path("runs/encoder_choice"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/encoder_choice.json"))
    ap.add_argument("--mlp", action="append", default=[], metavar="LAYERS",
                    help="only the shipped MLP head on these layers' statistics, concatenated (3, 2+3, ...), one row "
                         "each; skips the layer scan and attention. The first is the reference")
    args = ap.parse_args()
    bundles = named(args.bundle)
    stacks = [layer_list(v) for v in args.mlp]
    recs = {n: EmotionRecognizer.from_bundle(p, RuntimeOptions.cpu(threads=2)) for n, p in bundles.items()}
    ds = {c: load_corpus(c) for c in CORPORA}
    clean = {c: read(recs, ds[c], args.work) for c in CORPORA}
    babble = read(recs, ds["ravdess"], args.work, tag=BABBLE, transform=conditions()[BABBLE])
    y = {c: d.label_ids() for c, d in ds.items()}
    groups = {c: np.array([u.group for u in d.utterances]) for c, d in ds.items()}

    rows: dict[str, dict[str, Any]] = {}
    preds: dict[str, dict[str, np.ndarray]] = {}
    for enc in bundles:
        protocol = Protocol({c: clean[c][enc] for c in CORPORA}, babble[enc], y, groups)
        layers = clean["ravdess"][enc].stats.shape[1]
        if stacks:
            for stack in stacks:
                if max(stack) >= layers:
                    raise SystemExit(f"--mlp {'+'.join(map(str, stack))}: {enc} exposes layers 0-{layers - 1}")
                name = f"{enc} layers {'+'.join(map(str, stack))}, mlp"
                print(f"training {name}", flush=True)
                preds[name] = protocol.run(stats_head(stack, "mlp"))
                rows[name] = {"encoder": enc, "layer": "+".join(map(str, stack)), "head": "mlp",
                              **protocol.score(preds[name])}
                rows[name]["score"] = round(float(np.mean([rows[name]["loco_mean_ua"], rows[name]["ravdess_folds_ua"],
                                                           rows[name]["ravdess_babble10_ua"]])), 4)
                print(name, json.dumps({k: v for k, v in rows[name].items() if k != "loco"}), flush=True)
            continue
        candidates: list[tuple[str, int | None, Fit]] = [("lr", k, stats_head([k], "lr")) for k in range(layers)]
        candidates.append(("lr", None, stats_head(range(layers), "lr")))
        for head, layer, fit in track(candidates, description=f"{enc}: logistic regression per layer"):
            name = f"{enc} layer {'all' if layer is None else layer}, {head}"
            preds[name] = protocol.run(fit)
            rows[name] = {"encoder": enc, "layer": layer, "head": head, **protocol.score(preds[name])}
            print(name, json.dumps({k: v for k, v in rows[name].items() if k != "loco"}), flush=True)
        best = max((r for r in rows.values() if r["encoder"] == enc and r["layer"] is not None),
                   key=lambda r: r["loco_mean_ua"])["layer"]
        for layer in sorted({best} | ({SHIPPED[1]} if enc == SHIPPED[0] else set())):
            for head, fit in (("mlp", stats_head([layer], "mlp")), ("attention", attention_head(layer))):
                name = f"{enc} layer {layer}, {head}"
                print(f"training {name}", flush=True)
                preds[name] = protocol.run(fit)
                rows[name] = {"encoder": enc, "layer": layer, "head": head, **protocol.score(preds[name])}
                print(name, json.dumps({k: v for k, v in rows[name].items() if k != "loco"}), flush=True)

    if stacks:
        stacked_result(args, rows, preds, y, ds, bundles)
        return
    reference = f"{SHIPPED[0]} layer {SHIPPED[1]}, mlp"
    if reference in rows:
        for name, row in rows.items():
            if row["head"] != "lr" and name != reference:
                row["minus_shipped"] = minus(name, reference, preds, y)
    timed = latency({**named(args.latency), **bundles})
    top = max(r["loco_mean_ua"] for r in rows.values())
    near = [n for n, r in rows.items() if r["loco_mean_ua"] >= top - 0.01]
    speed = {enc: timed[enc]["p50_ms"] for enc in bundles}
    chosen = min(near, key=lambda n: (speed[rows[n]["encoder"]], -rows[n]["loco_mean_ua"]))
    write_result(args.out, {
        "data": {c: {"utterances": len(d), "classes": d.counts()} for c, d in ds.items()},
        "reading": "silero-vad speech span, voiced frames (EmotionRecognizer.encode_speech), one VAD pass shared",
        "weights": "each corpus equal, its classes equal within it",
        "rule": "best mean LOCO UA; among rows within 1 UA point of it, the fastest encoder",
        "rows": rows, "latency": timed, "chosen": chosen, "shipped": reference})
    for name, r in sorted(rows.items(), key=lambda kv: -kv[1]["loco_mean_ua"]):
        loco = " ".join(f"{r['loco'][c]['ua']:.3f}" for c in CORPORA)
        print(f"{name:32s} LOCO {loco} mean {r['loco_mean_ua']:.3f} | folds {r['ravdess_folds_ua']:.3f} "
              f"babble10 {r['ravdess_babble10_ua']:.3f}")
    print(f"chosen: {chosen}; latency {json.dumps({n: t['p50_ms'] for n, t in timed.items() if isinstance(t, dict)})}")


if __name__ == "__main__":
    main()
