"""How the default model generalises: to corpora, speakers, the stream path, noise and rooms it never met.

    python -m edgeser_benchmarks.generalisation --work runs/generalisation --jobs 2 \\
        --out benchmarks/results/generalisation.json

Every figure comes from utterances whose speakers (and, leave-one-corpus-out, whose corpus) no head was trained on.
Features go through the runtime (:func:`edgeser_export.multicorpus.features`: the shipped speech graph, silero-vad,
the frame-mask rule prediction uses) and are cached in ``--work`` (``--jobs N``: computed N files at a time first).

1. **Selection, leave-one-corpus-out** (LOCO): each recipe trained on the other corpora, scored on the one left
   out; recipes differ in pooling (every frame / voiced frames), data (RAVDESS / RAVDESS + EmoDB + TurEV, balanced
   by corpus and class), augmentation (none / 2 robot's-ear copies, :mod:`edgeser_export.augment`) and head
   (logistic regression / the shipped MLP ensemble). The chosen recipe has the best *score*: the mean of its mean
   LOCO UA over the three corpora and its LOCO UA on RAVDESS (trained on EmoDB + TurEV) averaged over the robot's
   conditions of 3 (trimmed, padded, babble and pink noise, rooms), since a robot's model must hold on a new corpus
   both clean and as a microphone in a room hears it. The previous default (every frame, RAVDESS only, MLP) is a
   row.
2. **The chosen recipe against baselines**, with stratified paired-bootstrap intervals (95%): LOCO per corpus,
   RAVDESS five actor folds, EmoDB leave-one-speaker-out, each against eGeMAPS + LR trained the same way (same
   corpora, weights and augmented copies) and against the previous default.
3. **The robot's path, RAVDESS folds**: the held-out actors' files trimmed of silence, padded with faint noise,
   joined into one recording and cut by the stream detector as ``edgeser listen`` does (UA, and the share of files
   given the whole file's label); babble and pink noise at 20/10/5/0 dB SNR; reverberation at RT60 0.3/0.6/1.0 s.
4. **Read narration** (LibriSpeech talkers that no babble used): the share of each label; in 5, with a site
   profile from LibriSpeech's other talkers.
5. **Site profiles**: the head for profiles (trained on frames z-scored with each training speaker's own statistics)
   scoring the left-out corpus with one profile of that corpus (its recordings outside the four classes, never a
   scored file): all of them, and random 1, 5 and 20 minutes of them.
6. **Calibration**: expected calibration error per corpus, raw and with a temperature fitted on the *other*
   corpora's LOCO predictions, each corpus weighing the same (TurEV's 1,327 utterances would otherwise decide it);
   the temperature fitted on all three is the one shipped; accuracy at 100/80/60% coverage (the abstention
   ``min_confidence`` trades).

MLP heads are built and trained as :data:`edgeser_export.multicorpus.HEAD` says (chosen by
:mod:`edgeser_benchmarks.head_choice`); the previous default's row keeps the head it had.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from rich.progress import track

from edgeser import EmotionRecognizer, RuntimeOptions
from edgeser.audio.vad import SileroVad
from edgeser.datasets import Dataset, Utterance
from edgeser.metrics import confusion_matrix, expected_calibration_error, unweighted_accuracy, weighted_accuracy
from edgeser.model.bundle import DEFAULT_LABELS
from edgeser.streaming import StreamOptions, UtteranceDetector
from edgeser_benchmarks.stats import interval, paired_bootstrap_ua
from edgeser_export import augment as aug
from edgeser_export.multicorpus import (
    CORPORA,
    HEAD,
    MASKS,
    HeadSpec,
    Pooled,
    balanced_weights,
    cache_name,
    cached,
    features,
    fit_lr,
    fit_mlp,
    fit_temperature,
    load_corpus,
    mlp_log_probs,
    pooled,
    speaker_normalised,
    speaker_profiles,
    talkers,
    unscored,
    waves,
)

COPIES = 2
GAP_S = 1.5
NOISE_SNR = (20, 10, 5, 0)
RT60 = (0.3, 0.6, 1.0)
Head = Callable[[np.ndarray], np.ndarray]
"""pooled statistics -> log-probabilities (n, 4)"""


@dataclass(frozen=True)
class Recipe:
    mask: str  # "all" | "voiced"
    corpora: tuple[str, ...]
    copies: int
    head: str  # "lr" | "mlp"
    spec: HeadSpec = HEAD  # how an MLP head is built and trained

    def as_dict(self) -> dict[str, Any]:
        """What a result file records of the recipe."""
        out: dict[str, Any] = {"mask": self.mask, "corpora": list(self.corpora), "copies": self.copies,
                               "head": self.head}
        if self.head == "mlp":
            out["mlp"] = asdict(self.spec)
        return out

    @property
    def name(self) -> str:
        data = "RAVDESS" if self.corpora == ("ravdess",) else "3 corpora"
        return (f"{'voiced' if self.mask == 'voiced' else 'all'} frames, {data}, "
                f"{f'+{self.copies} augmented' if self.copies else 'clean'}, {self.head.upper()}")


PREVIOUS = Recipe("all", ("ravdess",), 0, "mlp", HeadSpec())  # the head as it was then: 128 wide, dropout 0.1
RECIPES = [Recipe(m, c, k, h) for m in MASKS for c in (("ravdess",), CORPORA) for k in (0, COPIES)
           for h in ("lr", "mlp")]


class Labelled(Protocol):
    """What scoring reads of the corpora: each corpus's label ids and its utterances' speaker groups."""

    y: dict[str, np.ndarray]
    groups: dict[str, np.ndarray]


class Corpora:
    """Each corpus's labels, groups, clean and augmented features (statistics, or eGeMAPS)."""

    def __init__(self, rec: EmotionRecognizer, cache: Path, seed: int = 0, layers: Sequence[int] = (-1,)) -> None:
        self.rec, self.cache, self.seed = rec, cache, seed  # seed: which draw of augmented copies
        self.layers = tuple(layers)  # which exposed layers the statistics read, concatenated
        self.ds = {c: load_corpus(c) for c in CORPORA}
        self.y = {c: ds.label_ids() for c, ds in self.ds.items()}
        self.groups = {c: np.array([u.group for u in ds.utterances]) for c, ds in self.ds.items()}
        self.clean = {c: features(rec, ds, cache, layers=self.layers) for c, ds in self.ds.items()}
        self._aug: dict[tuple[str, int], Pooled] = {}
        for c in CORPORA:
            self.augmented(c, COPIES)
        self._egemaps: dict[tuple[str, int], np.ndarray] = {}

    def augmented(self, corpus: str, copies: int) -> Pooled:
        """Statistics of ``copies`` augmented copies of each utterance (computed, or read from the cache, once)."""
        if (corpus, copies) not in self._aug:
            self._aug[corpus, copies] = features(self.rec, self.ds[corpus], self.cache, copies=copies, seed=self.seed,
                                                 layers=self.layers)
        return self._aug[corpus, copies]

    def x(self, corpus: str, mask: str, copies: int, kind: str = "stats") -> np.ndarray:
        if kind == "egemaps":
            return self.egemaps(corpus, copies)
        return (self.augmented(corpus, copies) if copies else self.clean[corpus]).mask(mask)

    def egemaps(self, corpus: str, copies: int) -> np.ndarray:
        """eGeMAPS v02 functionals (openSMILE) of the same clean audio or augmented copies."""
        key = (corpus, copies)
        if key not in self._egemaps:
            self._egemaps[key] = egemaps_features(self.ds[corpus], self.cache, copies)
        return self._egemaps[key]

    def train(self, recipe: Recipe, parts: Sequence[tuple[str, np.ndarray]], kind: str = "stats") -> Head:
        """``recipe``'s head on ``parts`` (corpus, utterance indices): clean rows plus their augmented copies."""
        xs, ys, corpus = [], [], []
        for c, idx in parts:
            if c not in recipe.corpora or idx.size == 0:
                continue
            xs.append(self.x(c, recipe.mask, 0, kind)[idx])
            ys.append(self.y[c][idx])
            corpus += [c] * idx.size
            if recipe.copies:
                rows = copy_rows(idx, recipe.copies)
                xs.append(self.x(c, recipe.mask, recipe.copies, kind)[rows])
                ys.append(np.repeat(self.y[c][idx], recipe.copies))
                corpus += [c] * rows.size
        x, y = np.concatenate(xs), np.concatenate(ys)
        w = balanced_weights(corpus, y)
        if recipe.head == "lr" or kind == "egemaps":
            return fit_lr(x, y, w)
        model = fit_mlp(x, y, w, recipe.spec)
        return lambda s: mlp_log_probs(model, s)


def copy_rows(idx: np.ndarray, copies: int) -> np.ndarray:
    """The rows of utterances ``idx``'s augmented copies in a cache of ``copies`` copies of each utterance (the copies
    of an utterance together, :func:`edgeser_export.multicorpus.features`)."""
    return np.asarray((idx[:, None] * copies + np.arange(copies)[None, :]).reshape(-1))


SITE_MINUTES = (1, 5, 20)


def site_profiles(data: Corpora, recipe: Recipe, plain: dict[str, np.ndarray]) -> dict[str, Any]:
    """LOCO UA of the profile head (``recipe`` on speaker-normalised clean statistics; each training speaker's profile
    from all its recordings, labels unused) on each left-out corpus normalised with a site profile from that corpus's
    unscored recordings: all, and random subsets of :data:`SITE_MINUTES` (5 draws each, where there is that much)."""
    mask = recipe.mask
    spare = {c: unscored(c) for c in CORPORA}
    spare_x = {c: features(data.rec, spare[c], data.cache) for c in CORPORA}
    normalised = {}
    for c in CORPORA:
        groups = [u.group for u in spare[c].utterances] + list(data.groups[c])
        both = Pooled(np.concatenate([spare_x[c].stats, data.clean[c].stats]),
                      np.concatenate([spare_x[c].frames, data.clean[c].frames]))
        normalised[c] = speaker_normalised(data.x(c, mask, 0), list(data.groups[c]), speaker_profiles(both, mask,
                                                                                                     groups))
    seconds = {c: spare_x[c].frames[:, 0] * data.rec.speech.frames.hop_s for c in CORPORA}
    out: dict[str, Any] = {}
    rng = np.random.default_rng(11)
    for held in CORPORA:
        others = [c for c in CORPORA if c != held]
        x = np.concatenate([normalised[c] for c in others])
        y = np.concatenate([data.y[c] for c in others])
        corpus = [c for c in others for _ in range(len(data.y[c]))]
        head = fit_mlp(x, y, balanced_weights(corpus, y))
        score = functools.partial(site_score, data, held, mask, head, spare_x[held])

        every = np.arange(len(spare[held]))
        row: dict[str, Any] = {"none": unweighted_accuracy(confusion_matrix(data.y[held], plain[held].argmax(1), 4)),
                               "all": score(every), "all_minutes": float(seconds[held].sum() / 60)}
        for minutes in SITE_MINUTES:
            if seconds[held].sum() < minutes * 60:
                continue
            draws = []
            for _ in range(5):
                order = rng.permutation(every)
                take = order[: int(np.searchsorted(np.cumsum(seconds[held][order]), minutes * 60)) + 1]
                draws.append(score(take))
            row[f"{minutes} min"] = {"mean": float(np.mean(draws)), "min": float(np.min(draws)),
                                     "max": float(np.max(draws))}
        out[held] = row
    out["mean_all"] = float(np.mean([out[c]["all"] for c in CORPORA]))
    # narration: the profile head trained on all three corpora, one site profile from LibriSpeech's other talkers
    x = np.concatenate([normalised[c] for c in CORPORA])
    y = np.concatenate([data.y[c] for c in CORPORA])
    head = fit_mlp(x, y, balanced_weights([c for c in CORPORA for _ in range(len(data.y[c]))], y))
    site = narration(data.rec, data.cache, part="babble")
    profile = speaker_profiles(site, mask, ["librispeech"] * site.stats.shape[0])
    narr = narration(data.rec, data.cache)
    x = speaker_normalised(narr.mask(mask), ["librispeech"] * narr.stats.shape[0], profile)
    out["narration"] = {"site_profile_minutes": float(site.frames[:, 0].sum() * data.rec.speech.frames.hop_s / 60),
                        "shares": shares(mlp_log_probs(head, x))}
    return out


def site_score(data: Corpora, held: str, mask: str, head: Any, spare: Pooled, rows: np.ndarray) -> float:
    """UA of ``held`` by ``head`` with one site profile from ``spare``'s ``rows`` (the corpus's unscored audio)."""
    profile = speaker_profiles(Pooled(spare.stats[rows], spare.frames[rows]), mask, [held] * rows.size)
    x = speaker_normalised(data.x(held, mask, 0), [held] * len(data.y[held]), profile)
    return unweighted_accuracy(confusion_matrix(data.y[held], mlp_log_probs(head, x).argmax(1), len(DEFAULT_LABELS)))


def scores(truth: np.ndarray, log_probs: np.ndarray, folds: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
    pred = log_probs.argmax(1)
    cm = confusion_matrix(truth, pred, len(DEFAULT_LABELS))
    out: dict[str, Any] = {"ua": unweighted_accuracy(cm), "wa": weighted_accuracy(cm), "n": int(truth.size),
                           "confusion": cm.tolist(), "ece": expected_calibration_error(np.exp(log_probs), truth)}
    if folds is not None:
        out["fold_ua"] = [unweighted_accuracy(confusion_matrix(truth[f], pred[f], len(DEFAULT_LABELS))) for f in folds]
    return out


def loco_heads(data: Corpora, recipe: Recipe, kind: str = "stats") -> dict[str, Head]:
    """Per corpus, ``recipe`` trained on the other corpora (absent where it has none of them)."""
    out = {}
    for held in CORPORA:
        parts = [(c, np.arange(len(data.y[c]))) for c in CORPORA if c != held]
        if any(c in recipe.corpora for c, _ in parts):
            out[held] = data.train(recipe, parts, kind)
    return out


def loco(data: Corpora, recipe: Recipe, kind: str = "stats") -> dict[str, np.ndarray]:
    """Log-probabilities of each corpus from ``recipe`` trained on the other corpora (absent where it has none)."""
    return {held: head(data.x(held, recipe.mask, 0, kind)) for held, head in loco_heads(data, recipe, kind).items()}


def speaker_folds(data: Labelled, corpus: str, n_folds: int | None) -> list[np.ndarray]:
    """Test indices of ``corpus``: its speakers dealt into ``n_folds`` blocks in sorted order (``None``: one each)."""
    groups = data.groups[corpus]
    speakers = sorted(set(groups.tolist()))
    blocks = np.array_split(np.arange(len(speakers)), n_folds or len(speakers))
    return [np.flatnonzero(np.isin(groups, [speakers[i] for i in b])) for b in blocks]


def within(data: Corpora, recipe: Recipe, corpus: str, folds: list[np.ndarray], kind: str = "stats"
           ) -> tuple[np.ndarray, list[Head]]:
    """Log-probabilities of ``corpus`` by speaker folds: each fold scored by ``recipe`` trained on the corpus's
    other speakers plus the whole of its other corpora; and the fold heads."""
    n = len(data.y[corpus])
    out = np.zeros((n, len(DEFAULT_LABELS)))
    heads = []
    for test in folds:
        train = np.setdiff1d(np.arange(n), test)
        parts = [(corpus, train)] + [(c, np.arange(len(data.y[c]))) for c in CORPORA if c != corpus]
        fold_head = data.train(recipe, parts, kind)
        out[test] = fold_head(data.x(corpus, recipe.mask, 0, kind)[test])
        heads.append(fold_head)
    return out, heads


def by_folds(heads: Sequence[Head], folds: Sequence[np.ndarray], x: np.ndarray) -> np.ndarray:
    """Log-probabilities of every row of ``x`` by the fold head that did not train on it (``heads[f]`` scores
    ``folds[f]``)."""
    out = np.zeros((x.shape[0], len(DEFAULT_LABELS)))
    for head, test in zip(heads, folds, strict=True):
        out[test] = head(x[test])
    return out


def corpus_of_rows(data: Labelled, corpora: Sequence[str]) -> list[str]:
    """Each row's corpus, for ``corpora``'s rows concatenated in that order."""
    return [c for c in corpora for _ in range(len(data.y[c]))]


def calibration_elsewhere(data: Labelled, log_probs: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per corpus, leave-one-corpus-out: the temperature fitted on the *other* corpora's predictions (each corpus
    weighing the same), and this corpus's expected calibration error raw and with that temperature."""
    out = {}
    for c in CORPORA:
        others = [o for o in CORPORA if o != c]
        t = fit_temperature(np.concatenate([log_probs[o] for o in others]),
                            np.concatenate([data.y[o] for o in others]), corpus_of_rows(data, others))
        out[c] = {"temperature_from_others": t,
                  "ece_raw": expected_calibration_error(np.exp(log_probs[c]), data.y[c]),
                  "ece_calibrated": expected_calibration_error(np.exp(calibrate(log_probs[c], t)), data.y[c])}
    return out


def stream_path(rec: EmotionRecognizer, data: Corpora, folds: list[np.ndarray], heads: dict[str, list[Head]],
                masks: dict[str, str]) -> dict[str, np.ndarray]:
    """Per recipe, each RAVDESS file's log-probabilities on the stream path: a fold's files joined by
    :data:`GAP_S` of faint pink noise, cut by the stream detector with ``edgeser listen``'s options (silero-vad),
    each file given the utterance that overlaps it most (``-inf`` rows: no utterance found)."""
    ds = data.ds["ravdess"]
    out = {name: np.full((len(ds), len(DEFAULT_LABELS)), -np.inf) for name in heads}
    rng = np.random.default_rng(7)
    for f, test in enumerate(track(folds, description="stream path (RAVDESS folds)")):
        pieces, spans, pos = [], [], 0
        for i in test:
            gap = aug.coloured_noise(int(GAP_S * 16000), "pink", rng) * 10 ** (-55 / 20)
            wave = next(waves(Dataset("one", (ds.utterances[i],))))
            pieces += [gap, wave]
            spans.append((pos + gap.size, pos + gap.size + wave.size))
            pos += gap.size + wave.size
        recording = np.concatenate([*pieces, np.zeros(int(GAP_S * 16000), np.float32)])
        detector = UtteranceDetector(SileroVad(), StreamOptions(backpressure="block"))
        utts = []
        for k in range(0, recording.size, 1600):
            utts += detector.feed(recording[k : k + 1600])
        utts += detector.flush()
        stats = (np.stack([pooled(rec, u.samples)[0] for u in utts]) if utts
                 else np.zeros((0, len(MASKS), 2 * rec.speech.hidden_size)))
        for j, (a, b) in zip(test, spans, strict=True):
            overlap = [min(b, int(u.end_s * 16000)) - max(a, int(u.start_s * 16000)) for u in utts]
            if not overlap or max(overlap) <= 0:
                continue
            best = int(np.argmax(overlap))
            for name, fold_heads in heads.items():
                out[name][j] = fold_heads[f](stats[best : best + 1, MASKS.index(masks[name])])[0]
    return out


def conditions() -> dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]]:
    """The test conditions of RAVDESS files: trimmed, padded, noise, rooms (babble from narration talkers)."""
    voices: list[np.ndarray] = []

    def babble(x: np.ndarray, rng: np.random.Generator, snr: float) -> np.ndarray:
        if not voices:
            voices.extend(next(waves(Dataset("t", (Utterance("t", p, "", "", "", None),)))) for p in
                          talkers(part="narration"))
        return aug.add_noise(x, aug.babble(x.size, voices, rng), snr)

    out: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
        "trimmed": lambda x, rng: aug.trim(x),
        "padded": lambda x, rng: aug.pad_silence(x, 1.0, 2.0, rng, floor_db=-50)}
    for snr in NOISE_SNR:
        out[f"babble {snr} dB"] = functools.partial(babble, snr=snr)
        out[f"pink {snr} dB"] = functools.partial(pink, snr=snr)
    for rt60 in RT60:
        out[f"reverb {rt60} s"] = functools.partial(room, rt60=rt60)
    return out


def pink(x: np.ndarray, rng: np.random.Generator, snr: float) -> np.ndarray:
    return aug.add_noise(x, aug.coloured_noise(x.size, "pink", rng), snr)


def room(x: np.ndarray, rng: np.random.Generator, rt60: float) -> np.ndarray:
    return aug.reverberate(x, rt60, rng)


def egemaps_features(ds: Dataset, cache: Path, copies: int) -> np.ndarray:
    """eGeMAPS v02 functionals (openSMILE) of ``ds``'s clean audio or its first draw of augmented copies, cached."""
    import opensmile

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    path = cache / ("egemaps-" + cache_name(ds, "clean", copies, 0, "egemaps-v02"))
    return cached(path, lambda: {"x": np.stack([
        smile.process_signal(w, 16000).to_numpy()[0] for w in track(
            waves(ds, copies), total=len(ds) * max(copies, 1),
            description=f"eGeMAPS: {ds.name}{f' ({copies} copies)' if copies else ''}")])})["x"]


def warm(bundle: str, cache: Path, jobs: int) -> None:
    """Compute the feature cache files the protocol reads, ``jobs`` at a time (each worker its own recognizer, one
    thread), so that the protocol itself only reads them: every corpus clean and augmented, RAVDESS under each
    condition, eGeMAPS, narration, the spare recordings site profiles come from."""
    import concurrent.futures
    import multiprocessing
    import os

    work = [("egemaps", f"{c}:{COPIES}") for c in CORPORA] + [("copies", c) for c in CORPORA]  # the longest first
    work += [("condition", cond) for cond in conditions()] + [("egemaps", f"{c}:0") for c in CORPORA]
    work += [("narration", part) for part in ("narration", "babble")] + [("unscored", c) for c in CORPORA]
    os.environ["OMP_NUM_THREADS"] = "1"
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        for done in pool.map(functools.partial(_warm_one, bundle, cache), work):
            print(f"features: {done}", flush=True)


def _warm_one(bundle: str, cache: Path, job: tuple[str, str]) -> str:
    kind, name = job
    if kind == "egemaps":
        corpus, copies = name.split(":")
        egemaps_features(load_corpus(corpus), cache, int(copies))
        return f"eGeMAPS {name}"
    rec = EmotionRecognizer.from_bundle(bundle, RuntimeOptions.cpu(threads=1))
    if kind == "copies":
        features(rec, load_corpus(name), cache)
        features(rec, load_corpus(name), cache, copies=COPIES)
    elif kind == "condition":
        features(rec, load_corpus("ravdess"), cache, transform=conditions()[name], tag=name.replace(" ", ""))
    elif kind == "narration":
        narration(rec, cache, part=name)
    else:
        features(rec, unscored(name), cache)
    return f"{kind} {name}"


def narration(rec: EmotionRecognizer, cache: Path, part: str = "narration") -> Pooled:
    """The first 30 s of each LibriSpeech recording of ``part`` (:func:`talkers`: the scored narration, or the
    other talkers, whose audio also makes babble and the narration's site profile)."""
    paths = talkers(part=part)
    ds = Dataset(part, tuple(Utterance(p.stem, p, p.parent.name, p.parent.name, "", None) for p in paths))
    return features(rec, ds, cache, transform=lambda x, rng: x[: 30 * 16000], tag="first30s")


def shares(log_probs: np.ndarray) -> dict[str, float]:
    pred = log_probs.argmax(1)
    return {label: float(np.mean(pred == k)) for k, label in enumerate(DEFAULT_LABELS)}


def coverage(log_probs: np.ndarray, truth: np.ndarray, levels: Sequence[float] = (1.0, 0.8, 0.6)
             ) -> list[dict[str, float]]:
    """UA and WA of the most confident ``level`` share of predictions, and the confidence that keeps that share."""
    conf = np.exp(log_probs.max(1))
    order = np.argsort(-conf, kind="stable")
    out = []
    for level in levels:
        keep = order[: max(1, round(level * truth.size))]
        cm = confusion_matrix(truth[keep], log_probs[keep].argmax(1), len(DEFAULT_LABELS))
        out.append({"coverage": level, "ua": unweighted_accuracy(cm), "wa": weighted_accuracy(cm),
                    "min_confidence": float(conf[keep].min())})
    return out


def calibrate(log_probs: np.ndarray, t: float) -> np.ndarray:
    z = log_probs / t
    return np.asarray(z - np.logaddexp.reduce(z, axis=1, keepdims=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("runs/generalisation"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/generalisation.json"))
    ap.add_argument("--bundle", default="default",
                    help="whose speech graph makes the features (its last exposed layer): the default, or a candidate "
                         "encoder such as `edgeser export --speech whisper-base --layers 3`")
    ap.add_argument("--jobs", type=int, default=1, help="feature files computed at once, before the protocol")
    args = ap.parse_args()
    if args.jobs > 1:
        warm(args.bundle, args.work / "cache", args.jobs)
    from edgeser_benchmarks.provenance import write_result

    rec = EmotionRecognizer.from_bundle(args.bundle, RuntimeOptions.cpu(threads=1))
    source = rec.speech.provenance.get("source", {})
    cache = args.work / "cache"
    data = Corpora(rec, cache)
    result: dict[str, Any] = {"corpora": {c: {"utterances": len(ds), "speakers": len(set(data.groups[c])),
                                              "classes": ds.counts()} for c, ds in data.ds.items()},
                              "encoder": {"graph": f"{args.bundle}: {source.get('name', '?')}, block "
                                                   f"{rec.speech.exposed_layers[-1]}",
                                          "sha256": rec.speech_sha256}}

    # 1. selection
    conditioned = {cond: features(rec, data.ds["ravdess"], cache, transform=transform, tag=cond.replace(" ", ""))
                   for cond, transform in conditions().items()}
    selection = {}
    for recipe in track(RECIPES, description="recipes, leave-one-corpus-out"):
        heads = loco_heads(data, recipe)
        per = {c: scores(data.y[c], head(data.x(c, recipe.mask, 0))) for c, head in heads.items()}
        row: dict[str, Any] = {"recipe": recipe.as_dict(), "loco": {c: {k: per[c][k] for k in ("ua", "wa")}
                                                                   for c in per},
                               "mean_ua": float(np.mean([per[c]["ua"] for c in per])),
                               "all_corpora_scored": len(per) == len(CORPORA)}
        if "ravdess" in heads:  # the held-out corpus as a robot hears it
            robot = {cond: unweighted_accuracy(confusion_matrix(
                data.y["ravdess"], heads["ravdess"](x.mask(recipe.mask)).argmax(1), len(DEFAULT_LABELS)))
                for cond, x in conditioned.items()}
            row["ravdess_conditions_ua"] = robot
            row["ravdess_conditions_mean_ua"] = float(np.mean(list(robot.values())))
            row["score"] = (row["mean_ua"] + row["ravdess_conditions_mean_ua"]) / 2
        selection[recipe.name] = row
    chosen = max((r for r in RECIPES if selection[r.name]["all_corpora_scored"]),
                 key=lambda r: (round(selection[r.name]["score"], 4), -RECIPES.index(r)))
    result["selection"] = selection
    result["chosen"] = chosen.name
    result["previous"] = PREVIOUS.name
    egemaps = Recipe("all", chosen.corpora, chosen.copies, "lr")
    print(f"chosen: {chosen.name} (mean LOCO UA {100 * selection[chosen.name]['mean_ua']:.1f}, held-out RAVDESS "
          f"under the robot's conditions {100 * selection[chosen.name]['ravdess_conditions_mean_ua']:.1f})")

    # 2. the chosen recipe against the baselines
    lp_chosen, lp_prev, lp_ege = loco(data, chosen), loco(data, PREVIOUS), loco(data, egemaps, "egemaps")
    table = {}
    for c in CORPORA:
        y = data.y[c]
        row = {"chosen": scores(y, lp_chosen[c]), "egemaps": scores(y, lp_ege[c]),
               "vs_egemaps": paired_bootstrap_ua(y, lp_chosen[c].argmax(1), lp_ege[c].argmax(1), 4)}
        if c in lp_prev:
            row["previous"] = scores(y, lp_prev[c])
            row["vs_previous"] = paired_bootstrap_ua(y, lp_chosen[c].argmax(1), lp_prev[c].argmax(1), 4)
        table[c] = row
    result["loco"] = table
    folds = {"ravdess": speaker_folds(data, "ravdess", 5), "emodb": speaker_folds(data, "emodb", None)}
    fold_heads: dict[str, list[Head]] = {}
    inside: dict[str, Any] = {}
    for c, fs in folds.items():
        y = data.y[c]
        a, heads_a = within(data, chosen, c, fs)
        b, heads_b = within(data, PREVIOUS, c, fs)
        e, _ = within(data, egemaps, c, fs, "egemaps")
        inside[c] = {"folds": len(fs), "chosen": scores(y, a, fs), "previous": scores(y, b, fs),
                     "egemaps": scores(y, e, fs), "vs_previous": paired_bootstrap_ua(y, a.argmax(1), b.argmax(1), 4),
                     "vs_egemaps": paired_bootstrap_ua(y, a.argmax(1), e.argmax(1), 4)}
        if c == "ravdess":
            fold_heads = {"chosen": heads_a, "previous": heads_b}
            whole = {"chosen": a, "previous": b}
    result["speaker_folds"] = inside

    # 3. the robot's path, RAVDESS folds
    y = data.y["ravdess"]
    fs = folds["ravdess"]
    masks = {"chosen": chosen.mask, "previous": PREVIOUS.mask}

    robust: dict[str, Any] = {}
    for cond, stats in conditioned.items():
        robust[cond] = {}
        for name in fold_heads:
            lp = by_folds(fold_heads[name], fs, stats.mask(masks[name]))
            robust[cond][name] = {**scores(y, lp), "same_label": float(np.mean(lp.argmax(1) == whole[name].argmax(1)))}
    streamed = stream_path(rec, data, fs, fold_heads, masks)
    robust["stream path"] = {}
    for name, lp in streamed.items():
        found = np.isfinite(lp).all(1)
        pred = np.where(found, np.nan_to_num(lp, neginf=-1e9).argmax(1), -1)
        cm = confusion_matrix(y, np.where(pred < 0, (y + 1) % 4, pred), 4)  # a file with no utterance counts as wrong
        robust["stream path"][name] = {"ua": unweighted_accuracy(cm), "wa": weighted_accuracy(cm),
                                       "files_without_utterance": int((~found).sum()),
                                       "same_label": float(np.mean(pred == whole[name].argmax(1)))}
    robust["whole files"] = {name: {**scores(y, whole[name]), "same_label": 1.0} for name in fold_heads}
    result["robustness"] = robust

    # 4. read narration, by the recipes trained on everything
    everything = [(c, np.arange(len(data.y[c]))) for c in CORPORA]
    narr = narration(rec, cache)
    result["narration"] = {"utterances": int(narr.stats.shape[0]),
                           "chosen": shares(data.train(chosen, everything)(narr.mask(chosen.mask))),
                           "previous": shares(data.train(PREVIOUS, everything)(narr.mask(PREVIOUS.mask)))}

    # 5. site profiles, leave-one-corpus-out
    result["site_profile"] = site_profiles(data, chosen, lp_chosen)

    # 6. calibration, leave-one-corpus-out
    cal: dict[str, Any] = {"per_corpus": calibration_elsewhere(data, lp_chosen)}
    all_lp = np.concatenate([lp_chosen[c] for c in CORPORA])
    all_y = np.concatenate([data.y[c] for c in CORPORA])
    cal["temperature_all"] = fit_temperature(all_lp, all_y, corpus_of_rows(data, CORPORA))
    cal["coverage"] = coverage(calibrate(all_lp, cal["temperature_all"]), all_y)
    result["calibration"] = cal
    write_result(args.out, result)
    print("LOCO UA: " + ", ".join(f"{c} {100 * table[c]['chosen']['ua']:.1f} (eGeMAPS "
                                   f"{100 * table[c]['egemaps']['ua']:.1f}, {interval(table[c]['vs_egemaps'])})"
                                   for c in CORPORA))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
