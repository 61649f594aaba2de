"""The evaluation recipe: cross-validated fusion heads on cached features, from one config file.

Everything that can fail (paths, data, bundle, levels) is checked before any work starts.

Config (TOML or JSON); relative paths are relative to the config file::

    [data]
    dataset = "ravdess"          # ravdess | iemocap | meld | manifest
    path = "../shared/data/ravdess"
    folds = 5                    # omit for one fold per group (IEMOCAP: leave one session out)

    [model]
    bundle = "bundles/mine"
    levels = ["frame", "phone", "syllable", "word"]
    early = true
    late = true
    use_text = true
    segmenter = "bundle"         # or "hama": segments from the default phoneme aligner

    [train]
    epochs = 30
    seeds = 5                    # heads trained with seeds 0..4, averaged (default 1: one head)

    [output]
    dir = "runs/ravdess"
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from edgeser import EmotionRecognizer
from edgeser.datasets import Dataset, iter_missing_audio, load_iemocap, load_manifest, load_meld, load_ravdess
from edgeser.errors import DatasetError
from edgeser.metrics import FoldScores, confusion_matrix
from edgeser_export.configfile import read_config
from edgeser_export.features import FeatureSet, compute
from edgeser_export.model import LEVELS, FusionConfig
from edgeser_export.train import Features, TrainConfig, fit, predict

LOADERS: dict[str, Callable[[Path], Dataset]] = {"ravdess": load_ravdess, "iemocap": load_iemocap,
                                                 "meld": load_meld, "manifest": load_manifest}


class ConfigError(DatasetError):
    """A recipe config that is malformed or points at something missing."""


@dataclass(frozen=True)
class RecipeConfig:
    dataset: str
    data_path: Path
    bundle: Path
    output: Path
    folds: int | None = 5
    levels: tuple[str, ...] = LEVELS
    early: bool = True
    late: bool = True
    use_text: bool = True
    dim: int = 128
    heads: int = 4
    dropout: float = 0.2
    layer: int = -1
    segmenter: str = "bundle"
    cache: Path | None = None
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> RecipeConfig:
        path = Path(path)
        raw = read_config(path, ConfigError)
        base = path.parent

        def section(name: str) -> dict[str, Any]:
            value = raw.get(name, {})
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: [{name}] must be a table")
            return value

        data, model, train_cfg, output = section("data"), section("model"), section("train"), section("output")
        unknown = set(raw) - {"data", "model", "train", "output"}
        train_keys = {f.name for f in fields(TrainConfig)}
        model_keys = {"bundle", "levels", "early", "late", "use_text", "dim", "heads", "dropout", "layer", "segmenter"}
        problems = [f"unknown section(s) {sorted(unknown)}"] if unknown else []
        problems += [f"unknown [model] key {k!r}" for k in model if k not in model_keys]
        problems += [f"unknown [train] key {k!r}" for k in train_cfg if k not in train_keys]
        for key, sec in (("dataset", data), ("path", data), ("bundle", model), ("dir", output)):
            if key not in sec:
                problems.append(f"missing {key!r}")
        if problems:
            raise ConfigError(f"{path}: {'; '.join(problems)}")
        try:
            train = TrainConfig(**train_cfg)
        except ValueError as e:
            raise ConfigError(f"{path}: [train] {e}") from e
        return cls(dataset=str(data["dataset"]), data_path=base / data["path"], bundle=base / model["bundle"],
                   output=base / output["dir"], folds=data.get("folds", 5),
                   levels=tuple(model.get("levels", LEVELS)), early=bool(model.get("early", True)),
                   late=bool(model.get("late", True)), use_text=bool(model.get("use_text", True)),
                   dim=int(model.get("dim", 128)), heads=int(model.get("heads", 4)),
                   dropout=float(model.get("dropout", 0.2)), layer=int(model.get("layer", -1)),
                   segmenter=str(model.get("segmenter", "bundle")),
                   cache=base / output["cache"] if "cache" in output else None, train=train)


def check(config: RecipeConfig) -> tuple[Dataset, EmotionRecognizer, FusionConfig]:
    """Load and check everything the run needs; raises before any feature is computed."""
    if config.dataset not in LOADERS:
        raise ConfigError(f"dataset must be one of {sorted(LOADERS)}, got {config.dataset!r}")
    dataset = LOADERS[config.dataset](config.data_path)
    rec = EmotionRecognizer.from_bundle(config.bundle)
    m = rec.bundle.manifest
    if config.levels and m.speech is None:
        raise ConfigError(f"{config.bundle}: speech levels {list(config.levels)} need a speech encoder; the bundle "
                          "has none (or set levels = [] for text only)")
    if config.use_text and m.text is None:
        raise ConfigError(f"{config.bundle}: use_text needs a text encoder; the bundle has none")
    if config.levels:
        missing = list(iter_missing_audio(dataset))
        if missing:
            raise ConfigError(f"{len(missing)} audio files of {dataset.name} are missing, e.g. {missing[0]}")
    if config.use_text and any(not u.transcript for u in dataset.utterances):
        raise ConfigError(f"{dataset.name}: some utterances have no transcript; the text branch needs one each")
    dataset.folds(config.folds)  # raises if the folds cannot be made
    speech_dim = m.speech.hidden_size if m.speech else 1
    text_dim = m.text.hidden_size if m.text else 1
    try:
        fusion = FusionConfig(speech_dim=speech_dim, text_dim=text_dim, num_classes=len(dataset.labels),
                              labels=dataset.labels, levels=config.levels, early=config.early, late=config.late,
                              use_text=config.use_text, dim=config.dim, heads=config.heads, dropout=config.dropout)
    except ValueError as e:
        raise ConfigError(f"model settings: {e}") from e
    config.output.mkdir(parents=True, exist_ok=True)
    return dataset, rec, fusion


@dataclass(frozen=True)
class Prepared:
    """A checked run: dataset, recognizer, head config, features, their labels, and folds over feature positions."""

    dataset: Dataset
    rec: EmotionRecognizer
    fusion: FusionConfig
    features: FeatureSet
    labels: np.ndarray
    folds: list[tuple[list[int], list[int]]]


def prepare(config: RecipeConfig, progress: Callable[[str], None] = print, *, ray_address: str | None = None,
            workers: int | None = None) -> Prepared:
    """:func:`check`, then the features (cached; on Ray when ``ray_address`` or ``workers`` is given, see
    :func:`edgeser_export.features.compute`), with failures reported and folds mapped onto them."""
    dataset, rec, fusion = check(config)
    features = compute(rec, dataset, config.levels, config.use_text, config.cache or config.output / "cache",
                       config.layer, config.segmenter, ray_address=ray_address, workers=workers)
    for utt_id, reason in features.failures:
        progress(f"skipped {utt_id}: {reason}")
    position = {int(i): k for k, i in enumerate(features.indices)}
    folds = [([position[i] for i in tr if i in position], [position[i] for i in te if i in position])
             for tr, te in dataset.folds(config.folds)]
    return Prepared(dataset, rec, fusion, features, dataset.label_ids()[features.indices], folds)


def cross_validate(run: Prepared, fusion: FusionConfig, items: list[Features], train_config: TrainConfig,
                   progress: Callable[[str], None] | None = None) -> FoldScores:
    """Train on each fold's training part, score its held-out part."""
    matrices = []
    for f, (tr, te) in enumerate(run.folds):
        model = fit(fusion, [items[k] for k in tr], run.labels[tr], train_config)
        pred = predict(model, [items[k] for k in te]).argmax(1)
        matrices.append(confusion_matrix(run.labels[te], pred, len(run.dataset.labels)))
        if progress is not None:
            progress(f"fold {f + 1}: UA {FoldScores.from_folds([matrices[-1]]).ua[0]:.3f} on {len(te)} utterances")
    return FoldScores.from_folds(matrices)


def evaluate(config: RecipeConfig, progress: Callable[[str], None] = print, *, ray_address: str | None = None,
             workers: int | None = None) -> dict[str, Any]:
    """Cross-validate the configured heads; writes ``results.json`` and ``confusion.png`` to the output folder.
    ``ray_address`` / ``workers``: compute the features on Ray (:func:`prepare`)."""
    run = prepare(config, progress, ray_address=ray_address, workers=workers)
    dataset, features = run.dataset, run.features
    scores = cross_validate(run, run.fusion, features.items, config.train, progress)
    result = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
              "labels": list(dataset.labels), "utterances": len(features.items),
              "failures": [{"id": i, "reason": r} for i, r in features.failures], **scores.to_dict()}
    _write_json(config.output / "results.json", result)
    save_confusion_png(scores.confusion, dataset.labels, config.output / "confusion.png",
                       title=f"{dataset.name}: UA {scores.ua_mean:.3f} ± {np.std(scores.ua):.3f}")
    return result


ABLATION: tuple[tuple[str, dict[str, Any]], ...] = (
    ("speech: frames", {"levels": ("frame",), "early": False, "late": True, "use_text": False}),
    ("speech: frames + phones", {"levels": ("frame", "phone"), "early": False, "late": True, "use_text": False}),
    ("speech: + syllables", {"levels": ("frame", "phone", "syllable"), "early": False, "late": True,
                             "use_text": False}),
    ("speech: + words (all levels)", {"levels": LEVELS, "early": False, "late": True, "use_text": False}),
    ("text only", {"levels": (), "early": False, "late": True, "use_text": True}),
    ("early fusion", {"levels": LEVELS, "early": True, "late": False, "use_text": True}),
    ("late fusion", {"levels": LEVELS, "early": False, "late": True, "use_text": True}),
    ("early + late fusion", {"levels": LEVELS, "early": True, "late": True, "use_text": True}),
)
"""The seed paper's ablation: speech granularities, text alone, and the fusion strategies."""


def ablate(config: RecipeConfig, progress: Callable[[str], None] = print, *, ray_address: str | None = None,
           workers: int | None = None) -> str:
    """Cross-validate every :data:`ABLATION` variant on the same folds and features; returns a Markdown table
    (also written to ``ablation.md`` and ``ablation.json`` in the output folder)."""
    full = RecipeConfig(**{**config.__dict__, "levels": LEVELS, "use_text": True, "early": True, "late": True})
    run = prepare(full, progress, ray_address=ray_address, workers=workers)
    dataset, features, folds = run.dataset, run.features, run.folds
    rows = []
    for name, switches in ABLATION:
        fusion = FusionConfig(**{**run.fusion.__dict__, **switches})
        keep = [*fusion.levels, *(["text"] if fusion.use_text else [])]
        scores = cross_validate(run, fusion, [{k: it[k] for k in keep} for it in features.items], config.train)
        rows.append({"variant": name, **scores.to_dict()})
        progress(f"{name}: UA {scores.ua_mean:.3f}")
    table = "\n".join([f"| {dataset.name} ({len(features.items)} utterances, {len(folds)} folds) | UA | WA |",
                       "|---|---|---|"] + [f"| {r['variant']} | {100 * r['ua_mean']:.1f} ± {100 * r['ua_std']:.1f} | "
                                           f"{100 * r['wa_mean']:.1f} ± {100 * r['wa_std']:.1f} |" for r in rows])
    (config.output / "ablation.md").write_text(table + "\n", encoding="utf-8")
    _write_json(config.output / "ablation.json", {"rows": rows, "bundle": str(config.bundle)})
    return table


def train_bundle(config: RecipeConfig, out: Path, *, overwrite: bool = False,
                 progress: Callable[[str], None] = print, ray_address: str | None = None,
                 workers: int | None = None) -> dict[str, Any]:
    """Train the configured heads on every utterance and write ``config.bundle`` plus the fusion head to ``out``."""
    from edgeser_export.pipeline import add_fusion

    run = prepare(config, progress, ray_address=ray_address, workers=workers)
    dataset, rec, features = run.dataset, run.rec, run.features
    model = fit(run.fusion, features.items, run.labels, config.train)
    exposed = len(rec.speech.exposed_layers) if rec.bundle.manifest.speech else 1
    provenance = {"dataset": dataset.name, "data_path": str(config.data_path), "utterances": len(features.items),
                  "counts": dataset.subset(features.indices).counts(), "train": asdict(config.train),
                  "skipped": len(features.failures)}
    manifest = add_fusion(config.bundle, model, out, layer=config.layer % exposed, provenance=provenance,
                          segmenter=config.segmenter, overwrite=overwrite, progress=progress)
    return {"bundle": str(out), "utterances": len(features.items), "files": sorted(manifest.files)}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def save_confusion_png(confusion: np.ndarray, labels: tuple[str, ...], path: Path, title: str) -> None:
    """A row-normalised confusion matrix with counts, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.6, 4))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{rates[i, j]:.2f}\n({confusion[i, j]})", ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
