"""The quantize guard's checks of a variant against its FP32 parent: agreement of each graph's outputs on the
calibration feeds (:func:`agreement`), and, on labelled validation utterances, the UA of the fused model
(:func:`evaluate_ua`) or, when the head has heard every validation speaker, the UA and the labels kept on speakers
a fold head has not heard (:class:`UnseenSpeakers`). :mod:`edgeser_export.quantize` decides with them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeser import EmotionRecognizer, RuntimeOptions
from edgeser.audio import load_audio
from edgeser.audio.vad import Voicing
from edgeser.datasets import Dataset, heard_groups
from edgeser.metrics import evaluate
from edgeser.model.bundle import Manifest
from edgeser_export.progress import Ticker


def agreement(parent: dict[str, np.ndarray], variant: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean cosine similarity per float output (over positions), and frame-level argmax agreement of
    ``logits`` where present."""
    out = {}
    for name, a in parent.items():
        b = variant[name]
        if a.dtype.kind != "f":
            continue
        x, y = a.reshape(-1, a.shape[-1]).astype(np.float64), b.reshape(-1, b.shape[-1]).astype(np.float64)
        keep = np.linalg.norm(x, axis=1) > 0  # rows the parent leaves at zero (padding) say nothing
        norms = np.linalg.norm(x[keep], axis=1) * np.linalg.norm(y[keep], axis=1)
        dots = (x[keep] * y[keep]).sum(1)  # a variant row collapsed to zero scores 0, not skipped
        out[f"{name}_cosine"] = float(np.mean(np.where(norms > 0, dots / np.maximum(norms, 1e-300), 0.0))) \
            if keep.any() else 1.0
        if name == "logits":
            out["logits_argmax_agreement"] = float(np.mean(x.argmax(1) == y.argmax(1)))
    return out


def run_graph(path: Path, feeds: Sequence[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return [dict(zip(names, session.run(None, f), strict=True)) for f in feeds]


def mean_agreement(parent: Path, variant: Path, feeds: Sequence[dict[str, np.ndarray]]) -> dict[str, float]:
    """:func:`agreement` of the two graphs' outputs, averaged over ``feeds``."""
    return mean_output_agreement(run_graph(parent, feeds), run_graph(variant, feeds))


def mean_output_agreement(parent: Sequence[dict[str, np.ndarray]], variant: Sequence[dict[str, np.ndarray]]
                          ) -> dict[str, float]:
    rows = [agreement(a, b) for a, b in zip(parent, variant, strict=True)]
    return {k: round(float(np.mean([r[k] for r in rows])), 5) for k in rows[0]}


def speech_frames(bundle: Path, dataset: Dataset, layer: int, progress: Callable[[str], None] | None = None,
                  label: str = "frames", voicings: Sequence[Voicing] | None = None) -> list[np.ndarray]:
    """Each utterance's frames of the exposed speech ``layer``, one encoder pass each: ``(frames, dim)``; given each
    utterance's silero pass (``voicings``, :func:`edgeser.audio.vad.voicing`: it depends on the audio only, so one pass
    serves the parent and every variant), its voiced frames only, as a head with ``frame_mask="voiced"`` reads them
    (:meth:`edgeser.EmotionRecognizer.encode_speech`)."""
    rec = EmotionRecognizer.from_bundle(bundle, RuntimeOptions(verify_hashes=False))
    out = []
    utterances: Iterable[Any] = dataset.utterances
    if progress is not None:
        utterances = Ticker(progress, label, len(dataset)).over(utterances)
    for i, u in enumerate(utterances):
        keep = None
        if voicings is not None:
            enc, keep = rec.encode_speech(load_audio(u.path), voicings[i])
        else:
            enc = rec.encode(str(u.path))
        frames = enc.hidden_states[0, layer, : int(enc.num_frames[0])]
        out.append((frames if keep is None else frames[keep]).astype(np.float32))
    return out


class UnseenSpeakers:
    """The guard's check for a head that has heard every validation speaker (its UA there cannot drop).

    Speaker-grouped folds over the validation utterances (contiguous blocks of sorted speakers, as
    ``Dataset.folds`` deals them: RAVDESS actors 01-04, 05-08, ...): on each, the bundle's own head recipe (its
    ``FusionConfig`` and training settings from bundle.json, its seeds averaged) is trained on the parent's frames
    of the other speakers, as the shipped head was trained on FP32 frames, and scores the held-out speakers with
    the parent's frames and, in :meth:`check`, with a variant's: the UA a user loses on new speakers by swapping
    in the variant's speech graph (``edgeser_benchmarks.studies.precision_folds`` measures the same on all 560
    utterances). A
    head that reads more than frames (segments, text) is stood in for by a class-balanced logistic regression on
    each utterance's mean and std of the frames. On a few hundred utterances the estimate moves by a point or two
    with the sample, so a variant near the budget may pass or fail by chance.
    """

    def __init__(self, manifest: Manifest, parent: Sequence[np.ndarray], labels: np.ndarray, groups: np.ndarray,
                 folds: int = 5, progress: Callable[[str], None] | None = None) -> None:
        from edgeser_export.model import FusionConfig
        from edgeser_export.train import TrainConfig

        fusion = manifest.fusion
        assert fusion is not None
        config = FusionConfig.from_dict(fusion.provenance["config"]) if fusion.provenance.get("config") else None
        self.head = config is not None and config.levels == ("frame",) and not config.use_text
        # a statistics head reads each utterance's mean and std only: it trains on those (two frames that have
        # them, as the default was trained: edgeser_export.multicorpus.two_frames), in seconds instead of minutes
        self.statistics = self.head and config is not None and config.pooling == "statistics"
        settings = TrainConfig(**fusion.provenance.get("train", {}))
        self.labels, self.classes = labels, len(manifest.labels)
        names = sorted(set(groups.tolist()))  # contiguous blocks of sorted groups, as Dataset.folds deals them
        blocks = np.array_split(np.array(names), min(folds, len(names)))
        self.tests = [np.isin(groups, block) for block in blocks]
        self.models: list[Any] = []
        ticker = Ticker(progress or (lambda _: None), "validation: the head's recipe trained on the other speakers' "
                                                      "FP32 frames, folds", len(self.tests), every_s=0.0)
        for k, test in enumerate(self.tests, 1):
            if self.head:
                from edgeser_export.train import fit

                assert config is not None
                items = self._items(parent, np.flatnonzero(~test))
                self.models.append(fit(config, items, labels[~test], settings))
            else:
                from sklearn.linear_model import LogisticRegression

                x = _pooled(parent)[~test]
                mu, sd = x.mean(0), x.std(0) + 1e-8
                clf = LogisticRegression(max_iter=2000, class_weight="balanced").fit((x - mu) / sd, labels[~test])
                self.models.append((clf, mu, sd))
            ticker(k)
        ticker.finish()
        self.parent_pred = self.predictions(parent)
        self.parent_ua = self._ua(self.parent_pred)

    def _items(self, frames: Sequence[np.ndarray], idx: np.ndarray) -> list[dict[str, np.ndarray]]:
        if self.statistics:
            from edgeser_export.multicorpus import two_frames

            return two_frames(_pooled([frames[int(i)] for i in idx]))
        return [{"frame": frames[int(i)]} for i in idx]

    def _ua(self, pred: np.ndarray) -> float:
        from edgeser.metrics import confusion_matrix, unweighted_accuracy

        return unweighted_accuracy(confusion_matrix(self.labels, pred, self.classes))

    def ua(self, frames: Sequence[np.ndarray]) -> float:
        return self._ua(self.predictions(frames))

    def predictions(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """Each validation utterance's label id, by the fold head that has not heard its speaker."""
        from edgeser_export.train import predict

        pred = np.full(len(self.labels), -1)
        for test, model in zip(self.tests, self.models, strict=True):
            idx = np.flatnonzero(test)
            if self.head:
                pred[idx] = predict(model, self._items(frames, idx)).argmax(1)
            else:
                clf, mu, sd = model
                pred[idx] = clf.predict((_pooled(frames)[idx] - mu) / sd)
        return pred

    def check(self, variant: Sequence[np.ndarray]) -> dict[str, Any]:
        pred = self.predictions(variant)
        ua = self._ua(pred)
        return {"method": "the bundle's head recipe" if self.head else "logistic regression probe",
                "folds": len(self.tests), "utterances": len(self.labels), "parent_ua": self.parent_ua,
                "variant_ua": ua, "drop_points": 100 * (self.parent_ua - ua),
                "label_agreement": float(np.mean(pred == self.parent_pred))}


def _pooled(frames: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([np.concatenate([f.mean(0), f.std(0)]) for f in frames])


def evaluate_ua(bundle: Path, dataset: Dataset, progress: Callable[[str], None] | None = None,
                label: str = "validation") -> tuple[dict[str, Any], np.ndarray]:
    """UA/WA of a bundle's fused model on a labelled dataset (transcripts used where present), and each
    utterance's predicted label id, apart (``(scores, predictions)``)."""
    utterances: Iterable[Any] = dataset.utterances
    if progress is not None:
        utterances = Ticker(progress, label, len(dataset)).over(utterances)
    result = evaluate(EmotionRecognizer.from_bundle(bundle, RuntimeOptions(verify_hashes=False)), utterances,
                      keep_predictions=True)
    result.pop("truth")
    return result, np.asarray(result.pop("predictions"))


def blind_validation(manifest: Manifest, validation: Dataset) -> bool:
    """Whether the bundle's head was trained on every speaker of ``validation``, so that its UA there cannot
    show what a variant costs on new speakers."""
    trained = (manifest.fusion.provenance.get("train_groups") if manifest.fusion else None) or []
    return bool(trained) and {u.group for u in validation.utterances} <= heard_groups(trained, validation)
