"""Train the default head on every emotion corpus here, over speech frames only, with a robot's augmentation.

    python -m edgeser_export.multicorpus --out runs/default-multicorpus --ship

The corpora (``../shared/data``): RAVDESS (English, 20 actors), EmoDB (German, 10 actors), TurEV (Turkish words,
6 speakers, no neutral: its ``calm`` is left out, never mapped). Every utterance goes once through the runtime's
speech encoder (``edgeser.EmotionRecognizer.encode``) and silero-vad (:func:`edgeser.audio.vad.voicing`), and what a
statistics-pooling head reads is kept: the mean and standard deviation of each encoder dimension over every frame
and over the voiced frames (:meth:`edgeser.audio.vad.Voicing.frame_mask`, the rule prediction uses). Training copies are
augmented (:mod:`edgeser_export.augment`) before that pass, so the features of a copy are what the runtime would
compute on that audio.

A statistics head (:class:`edgeser_export.model.FusionModel` with ``pooling="statistics"``) reads nothing of the
frames but their mean and standard deviation, so it is trained on two frames per utterance, ``mean + std`` and
``mean - std``, whose mean and (population) standard deviation are the utterance's: the same model and gradients
as from every frame, at a fraction of the cost. The exported graph takes real frames.

Weights balance corpus and class: each corpus carries the same total weight, shared equally among the classes it
has (TurEV's three), so no corpus and no class dominates and nothing is invented for TurEV's missing neutral.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import track

import edgeser
from edgeser import EmotionRecognizer, RuntimeOptions
from edgeser.audio import load_audio
from edgeser.datasets import Dataset, Utterance, load_ravdess
from edgeser.model.bundle import DEFAULT_LABELS, sha256_file
from edgeser_export.augment import Augmentation, augment
from edgeser_export.model import FusionConfig, FusionEnsemble
from edgeser_export.train import TrainConfig, predict, train_ensemble

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CORPORA = ("ravdess", "emodb", "turev")
LICENCES = {"ravdess": "CC BY-NC-SA 4.0 (Livingstone & Russo 2018)",
            "emodb": "free for research (Burkhardt et al. 2005)",
            "turev": "CC BY-NC-ND 4.0 (Canpolat, Ormanoglu & Zeyrek 2020)"}
MASKS = ("all", "voiced")
TRAIN = TrainConfig(epochs=30, seeds=5)


@dataclass(frozen=True)
class HeadSpec:
    """The default's statistics head: its MLP's width and dropout, and how it is trained
    (``python -m edgeser_benchmarks.head_choice`` compares some)."""

    dim: int = 128
    dropout: float = 0.1
    train: TrainConfig = TRAIN


HEAD = HeadSpec(dropout=0.5, train=replace(TRAIN, label_smoothing=0.1))
"""The shipped head: dropout 0.5 and label smoothing 0.1 (``benchmarks/results/head_choice.json``: mean of LOCO
UA, RAVDESS fold UA and babble-10-dB UA 71.1 against 68.8 for the 128-wide, dropout-0.1 head first shipped)."""


def load_corpus(name: str, root: Path = DATA) -> Dataset:
    """A corpus's four-class utterances (``labels.csv``'s ``emotion4``), grouped by ``corpus:speaker``."""
    ds = load_ravdess(root / name)
    utts = tuple(replace(u, id=f"{name}/{u.id}", group=f"{name}:{u.speaker}") for u in ds.utterances)
    return Dataset(name, utts, ds.labels)


def unscored(name: str, root: Path = DATA) -> Dataset:
    """A corpus's recordings outside the four classes (calm, fear, disgust, boredom, ...), as unlabelled speech of
    its speakers: what a speaker profile (``edgeser enroll``) is made from. Their ``label`` is ``""``."""
    import csv

    with open(root / name / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if not r["emotion4"]]
    utts = tuple(Utterance(id=f"{name}/{Path(r['path']).stem}", path=root / name / r["path"], speaker=r["speaker"],
                           group=f"{name}:{r['speaker']}", label="", transcript=None) for r in rows)
    return Dataset(f"{name}-unscored", utts, DEFAULT_LABELS)


def talkers(root: Path = DATA, part: str = "babble") -> list[Path]:
    """LibriSpeech utterances for babble noise (``part="babble"``: speakers in the first half of the manifest) or
    for scoring read narration (``"narration"``: the second half), so no talker does both."""
    import csv

    with open(root / "librispeech" / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    speakers = sorted({r["speaker"] for r in rows})
    first = set(speakers[: len(speakers) // 2])
    return [root / "librispeech" / r["path"] for r in rows if (r["speaker"] in first) == (part == "babble")]


@dataclass(frozen=True)
class Pooled:
    """What a statistics head reads of each utterance: ``stats`` ``(n, masks, 2 * dim)`` (mean then std, for
    :data:`MASKS` all and voiced frames) and ``frames`` ``(n, masks)``, the frame counts they came from."""

    stats: np.ndarray
    frames: np.ndarray

    def mask(self, which: str) -> np.ndarray:
        return np.asarray(self.stats[:, MASKS.index(which)])


def pooled(rec: EmotionRecognizer, wave: np.ndarray, layers: Sequence[int] = (-1,)) -> tuple[np.ndarray, np.ndarray]:
    """One utterance through the runtime: ``(stats (masks, 2 * dim), frames (masks,))``: for ``all``, every frame
    of the whole utterance (the previous default's reading); for ``voiced``, the voiced frames of the speech span
    (:meth:`edgeser.EmotionRecognizer.encode_speech`, what a ``frame_mask="voiced"`` head reads). ``layers``: which
    of the graph's exposed layers, their frames concatenated (by default the last, what the default's head reads)."""
    whole = rec.encode(wave, sample_rate=16000)
    span, keep = rec.encode_speech(wave)
    stats, counts = [], []
    for encoded, m in ((whole, None), (span, keep)):
        hidden, _ = encoded.item(0)
        x = np.concatenate([hidden[k] for k in layers], axis=-1).astype(np.float64)
        x = x if m is None else x[m]
        stats.append(np.concatenate([x.mean(0), x.std(0)]))
        counts.append(x.shape[0])
    return np.stack(stats).astype(np.float32), np.array(counts, dtype=np.int64)


def waves(ds: Dataset, copies: int = 0, seed: int = 0,
          transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None) -> Iterator[np.ndarray]:
    """Each utterance's audio (``copies == 0``), or ``copies`` augmented copies of each, one after another, or
    ``transform(wave, rng)`` of each (a test condition); the random draws are seeded by ``seed``, the utterance's
    position and ``copies``, so every reader of the same settings hears the same copies."""
    voices = [load_audio(p) for p in talkers()] if copies else []
    for i, u in enumerate(ds.utterances):
        if u.path is None:
            raise ValueError(f"{u.id}: no audio")
        wave = load_audio(u.path)
        rng = np.random.default_rng([seed, i, copies])
        if copies:
            for _ in range(copies):
                yield augment(wave, rng, voices)[0]
        else:
            yield transform(wave, rng) if transform is not None else wave


def cached(path: Path, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays saved at ``path``, or ``compute()``'s, saved there (a temporary name, then renamed)."""
    if path.is_file():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    out = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, **out)  # type: ignore[arg-type]
    tmp.replace(path)
    return out


def cache_name(ds: Dataset, tag: str, copies: int, seed: int, graph: str, layers: Sequence[int] = (-1,)) -> str:
    """A cache file's name: changes with the graph, the layers read, the utterances, the copies, the seed, the
    augmentation."""
    ident = {"graph": graph, "dataset": [u.id for u in ds.utterances], "copies": copies, "seed": seed,
             "tag": tag, "augmentation": asdict(Augmentation()) if copies else None, "rule": "span-1"}
    if tuple(layers) != (-1,):  # the last layer alone keeps the names of the files cached before layers were read
        ident["layers"] = list(layers)
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    return f"{ds.name}-{tag}-{copies}-{key}.npz"


def features(rec: EmotionRecognizer, ds: Dataset, cache: Path, copies: int = 0, seed: int = 0,
             transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
             tag: str = "clean", layers: Sequence[int] = (-1,)) -> Pooled:
    """:func:`pooled` of each of :func:`waves` (``(n * max(copies, 1), ...)``, the copies of an utterance together),
    cached in ``cache`` by the speech graph's hash and the settings (``tag`` names a ``transform``)."""

    def compute() -> dict[str, np.ndarray]:
        what = f"features: {ds.name} ({tag}{f', {copies} copies' if copies else ''})"
        out = [pooled(rec, w, layers) for w in track(waves(ds, copies, seed, transform),
                                                     total=len(ds) * max(copies, 1), description=what)]
        return {"stats": np.stack([o[0] for o in out]), "frames": np.stack([o[1] for o in out])}

    z = cached(cache / cache_name(ds, tag, copies, seed, rec.speech_sha256, layers), compute)
    return Pooled(z["stats"], z["frames"])


def balanced_weights(corpus: Sequence[str], labels: np.ndarray) -> np.ndarray:
    """Per item: each corpus weighs the same in all, shared equally among the classes it has, then among the
    items of that class (so the weights sum to the number of corpora)."""
    names = np.asarray(corpus)
    w = np.zeros(len(labels), dtype=np.float64)
    for c in np.unique(names):
        classes = np.unique(labels[names == c])
        for k in classes:
            rows = (names == c) & (labels == k)
            w[rows] = 1.0 / (len(classes) * rows.sum())
    out: np.ndarray = (w * len(labels) / w.sum()).astype(np.float32)
    return out


def two_frames(stats: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Items of ``{"frame": (2, dim)}`` whose mean and population std are ``stats``' (see the module's note)."""
    dim = stats.shape[-1] // 2
    mean, std = stats[:, :dim], stats[:, dim:]
    return [{"frame": np.stack([m + s, m - s]).astype(np.float32)} for m, s in zip(mean, std, strict=True)]


def statistics_config(dim: int, head: HeadSpec = HEAD) -> FusionConfig:
    """The default's head: late fusion of frames only, statistics pooling, no text."""
    return FusionConfig(speech_dim=dim, text_dim=dim, num_classes=len(DEFAULT_LABELS), labels=DEFAULT_LABELS,
                        levels=("frame",), early=False, late=True, use_text=False, pooling="statistics",
                        dim=head.dim, dropout=head.dropout)


def fit_mlp(stats: np.ndarray, labels: np.ndarray, weights: np.ndarray, head: HeadSpec = HEAD) -> FusionEnsemble:
    """The default's head (an ensemble of ``head.train.seeds``) on pooled statistics."""
    return train_ensemble(statistics_config(stats.shape[-1] // 2, head), two_frames(stats), labels, head.train,
                          weights=weights)


def mlp_log_probs(model: FusionEnsemble, stats: np.ndarray) -> np.ndarray:
    return predict(model, two_frames(stats))


def fit_lr(stats: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Logistic regression (C = 1) on z-scored statistics, with the same weights: returns ``x -> log-probs``."""
    from sklearn.linear_model import LogisticRegression

    mu, sd = stats.mean(0), stats.std(0) + 1e-8
    lr = LogisticRegression(C=1.0, max_iter=3000).fit((stats - mu) / sd, labels, sample_weight=weights)
    classes = list(lr.classes_)

    def log_probs(x: np.ndarray) -> np.ndarray:
        p = np.full((x.shape[0], len(DEFAULT_LABELS)), 1e-12)
        p[:, classes] = np.maximum(lr.predict_proba((x - mu) / sd), 1e-12)
        return np.asarray(np.log(p))

    return log_probs


def speaker_profiles(frames: Pooled, mask: str, speakers: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per speaker, the mean and std of every frame of its recordings (what ``edgeser enroll`` computes), combined
    from the per-utterance statistics and frame counts."""
    m = MASKS.index(mask)
    dim = frames.stats.shape[-1] // 2
    out = {}
    for s in sorted(set(speakers)):
        rows = np.flatnonzero(np.asarray(speakers) == s)
        n = frames.frames[rows, m].astype(np.float64)[:, None]
        mean, std = frames.stats[rows, m, :dim].astype(np.float64), frames.stats[rows, m, dim:].astype(np.float64)
        total = (n * mean).sum(0) / n.sum()
        var = (n * (std**2 + (mean - total) ** 2)).sum(0) / n.sum()
        out[s] = (total, np.sqrt(var))
    return out


def speaker_normalised(stats: np.ndarray, speakers: Sequence[str],
                       profiles: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The statistics of frames z-scored with each speaker's profile (:meth:`edgeser.speaker.SpeakerProfile.normalise`):
    the mean moves and scales, the std scales."""
    from edgeser.speaker import STD_FLOOR

    dim = stats.shape[-1] // 2
    out = np.empty_like(stats)
    for i, s in enumerate(speakers):
        mean, std = profiles[s]
        scale = std + STD_FLOOR
        out[i, :dim] = (stats[i, :dim] - mean) / scale
        out[i, dim:] = stats[i, dim:] / scale
    return out


def fit_temperature(log_probs: np.ndarray, labels: np.ndarray, groups: Sequence[str] | None = None) -> float:
    """The temperature (0.25-50, a fine grid) that minimises the negative log-likelihood of ``labels``; with
    ``groups`` (one per row, such as its corpus), each group weighs the same, however many rows it has."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(50), 300))
    if groups is None:
        w = np.full(len(labels), 1.0 / len(labels))
    else:
        g = np.asarray(groups)
        names, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
        w = 1.0 / (len(names) * counts[inverse])

    def nll(t: float) -> float:
        z = log_probs / t
        z = z - np.logaddexp.reduce(z, axis=1, keepdims=True)
        return float(-(w * z[np.arange(len(labels)), labels]).sum())

    return float(min(grid, key=nll))


def ship(out: Path, cache: Path, copies: int, temperature: float, ship_to: Path | None,
         progress: Callable[[str], None] = print, mask: str = "voiced", speech: Path | None = None,
         temperature_rule: str = "") -> None:
    """The chosen recipe trained on every corpus (clean and ``copies`` augmented copies, ``mask`` frames), with the
    head for enrolled speakers trained the same way on speaker-normalised statistics, exported over the speech graph
    of ``speech`` (a bundle exposing the one layer the head reads; by default the shipped default's) to
    ``out/full`` (and copied to ``ship_to``)."""
    from edgeser import default
    from edgeser_export.pipeline import add_fusion

    source = speech or default.SHIPPED
    rec = EmotionRecognizer.from_bundle(source, RuntimeOptions.cpu(threads=1))
    corpora = {c: load_corpus(c) for c in CORPORA}
    x, y, corpus, speakers = [], [], [], []
    nx, nspk = [], []
    for c, ds in corpora.items():
        clean = features(rec, ds, cache)
        aug = features(rec, ds, cache, copies=copies) if copies else None
        labels = ds.label_ids()
        spk = [u.group for u in ds.utterances]
        x.append(clean.mask(mask))
        y.append(labels)
        corpus += [c] * len(labels)
        speakers += spk
        if aug is not None:
            x.append(aug.mask(mask))
            y.append(np.repeat(labels, copies))
            corpus += [c] * (len(labels) * copies)
            speakers += [s for s in spk for _ in range(copies)]
        un = unscored(c)  # a speaker's profile: all its recordings (labels unused), as the protocol trains it
        nx += [features(rec, un, cache), clean]
        nspk += [u.group for u in un.utterances] + spk
    stats, labels = np.concatenate(x), np.concatenate(y)
    weights = balanced_weights(corpus, labels)
    progress(f"training the head on {len(labels)} utterances ({', '.join(CORPORA)}; clean + {copies} copies)")
    model = fit_mlp(stats, labels, weights)
    profile_frames = Pooled(np.concatenate([p.stats for p in nx]), np.concatenate([p.frames for p in nx]))
    profiles = speaker_profiles(profile_frames, mask, nspk)
    progress("training the head for enrolled speakers")
    speaker_model = fit_mlp(speaker_normalised(stats, speakers, profiles), labels, weights)
    encoder_bundle = out / "encoder-bundle"
    if not encoder_bundle.is_dir():
        encoders_only_speech(source, encoder_bundle)
    counts = {c: ds.counts() for c, ds in corpora.items()}
    provenance = {"dataset": {c: {"utterances": len(ds), "classes": counts[c], "licence": LICENCES[c]}
                              for c, ds in corpora.items()},
                  "data_path": "../shared/data", "augmented_copies": copies, "augmentation": asdict(Augmentation()),
                  "frame_mask": mask, "weights": "each corpus equal, its classes equal within it",
                  "train": asdict(HEAD.train), "head": {"dim": HEAD.dim, "dropout": HEAD.dropout},
                  "configuration": f"speech: frames (statistics over {mask} frames)",
                  "temperature": temperature, "temperature_rule": temperature_rule, "held_out_groups": [],
                  "train_groups": sorted({s for s in speakers}),
                  "chosen_on": ("leave-one-corpus-out UA, clean and under a robot's conditions "
                                "(benchmarks/results/generalisation.json)"),
                  "recipe": "python -m edgeser_export.multicorpus"}
    speaker_provenance = {**provenance, "normalisation": (
        "each speaker's voiced frames z-scored with that speaker's profile from all its recordings (labels unused), "
        "as edgeser enroll makes one")}
    full = out / "full"
    add_fusion(encoder_bundle, model, full, layer=0, provenance=provenance, overwrite=True,
               speaker_model=speaker_model, speaker_provenance=speaker_provenance, frame_mask=mask,
               segmenter="hama",  # Whisper has no CTC head: segments on request come from the default aligner
               temperature=temperature, progress=progress)
    if ship_to is not None:
        copy_bundle(full, ship_to)


def encoders_only_speech(bundle: Path, out: Path) -> None:
    """A copy of ``bundle`` with its speech encoder and nothing else, its float16-exact weights stored as float16
    (:func:`edgeser_export.storage.fp16_weights`; bit-identical outputs, about half the file) unless they already
    are."""
    from edgeser.model.bundle import Bundle
    from edgeser.model.writer import write_bundle
    from edgeser_export.storage import speech_fp16

    src = Bundle.load(bundle)
    assert src.manifest.speech is not None
    with write_bundle(out, overwrite=True) as writer:
        speech = speech_fp16(src.manifest.speech, src.path, writer.staging)
        writer.finish(replace(src.manifest, speech=speech, fusion=None, speaker_fusion=None, text=None, engines=(),
                              files={}, edgeser_version=edgeser.__version__))


def copy_bundle(bundle: Path, out: Path, manifest: Any = None, names: Sequence[str] | None = None) -> None:
    """``bundle``'s files (or ``names`` of them) at ``out`` under ``manifest`` (default: its own, with this edgeser's
    version), written whole or not at all."""
    import shutil

    from edgeser.model.bundle import Bundle
    from edgeser.model.writer import write_bundle

    src = Bundle.load(bundle)
    m = manifest or replace(src.manifest, edgeser_version=edgeser.__version__)
    with write_bundle(out, overwrite=True) as writer:
        for name in names or list(src.manifest.files):
            shutil.copy2(src.path / name, writer.path(name))
        writer.finish(replace(m, files={}))


def shipped_temperature(calibration: dict[str, Any]) -> tuple[float, str]:
    """The temperature to ship, from the protocol's calibration section: the one fitted on every corpus's
    leave-one-corpus-out predictions, if temperatures fitted that way lowered the expected calibration error of the
    corpora they were not fitted on (mean over corpora); otherwise none (1.0): a temperature that does not carry
    to an unheard corpus is not shipped."""
    per = calibration["per_corpus"].values()
    raw = float(np.mean([c["ece_raw"] for c in per]))
    fitted = float(np.mean([c["ece_calibrated"] for c in per]))
    if fitted < raw:
        return float(calibration["temperature_all"]), f"it lowered the unheard corpora's ECE {raw:.3f} -> {fitted:.3f}"
    return 1.0, (f"a temperature fitted on the other corpora raised the unheard corpus's ECE (mean {raw:.3f} -> "
                 f"{fitted:.3f}), so none is shipped")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=None, help="feature cache (default OUT/cache)")
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results/generalisation.json"),
                    help="the protocol's result file (python -m edgeser_benchmarks.generalisation): its chosen "
                         "recipe and its temperature are what is trained and shipped")
    ap.add_argument("--ship", action="store_true", help="write the parts to edgeser/models/default")
    ap.add_argument("--speech", type=Path, default=None,
                    help="the encoder: a bundle exposing the layer the head reads, as the result file's protocol "
                         "measured it (python -m edgeser_benchmarks.generalisation --bundle); default: the shipped one")
    args = ap.parse_args()
    from edgeser import default

    if not args.results.is_file():
        raise SystemExit(f"{args.results}: no such result file; run python -m edgeser_benchmarks.generalisation first")
    results = json.loads(args.results.read_text())
    recipe = results["selection"][results["chosen"]]["recipe"]
    if recipe["head"] != "mlp" or tuple(recipe["corpora"]) != CORPORA:
        raise SystemExit(f"the chosen recipe ({results['chosen']}) is not an MLP on every corpus; this script trains "
                         "only that kind of head")
    temperature, why = shipped_temperature(results["calibration"])
    print(f"recipe: {results['chosen']}; temperature {temperature:.2f} ({why})")
    ship(args.out, args.cache or args.out / "cache", int(recipe["copies"]), temperature,
         default.SHIPPED if args.ship else None, mask=recipe["mask"], speech=args.speech, temperature_rule=why)
    print(f"edgeser {edgeser.__version__}; speech graph {sha256_file(default.SHIPPED / 'speech.onnx')[:12]}")


if __name__ == "__main__":
    main()
