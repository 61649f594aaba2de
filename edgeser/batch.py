"""Corpus jobs: one prediction per file of a manifest or folder, written as JSONL and Parquet shards.

A job reads its inputs (:func:`read_inputs`: a CSV with a ``path`` column, paths relative to the CSV's folder or
absolute, an optional ``text`` column; or a folder, every audio file under it), cuts them into shards of
``shard_size`` files in input order, and writes each shard as ``part-NNNNN.jsonl`` and ``part-NNNNN.parquet``
(each written to a temporary name and renamed: a shard is there whole or not at all). A rerun skips the shards
already written, so a job killed halfway resumes where it stopped; ``batch.json`` records what the job was (its
inputs' digest and settings) and a rerun with other inputs or settings into the same folder is refused.

Every file gets one record, also when it fails: ``path`` (as given), ``status`` (``ok`` or ``error``), ``error``
and ``error_type``, ``duration_s``, ``seconds`` (wall time of the file), then the prediction's own fields as
``edgeser predict --json`` prints them (:meth:`edgeser.results.Prediction.to_dict`: ``label``, ``probabilities``,
``branches``, ``transcript``, ``speaker``, ``voiced_s``, the stage ``timings``, and with ``segments`` the timed
``words``, ``syllables``, ``phones`` and their ``alignment_confidence``); every key is in every record, ``None``
where it does not apply. ``summary.json`` counts them. A failure is recorded and counted, never fatal.

Where recognition runs: in this process (:func:`run`), or on Ray (``ray_address`` / ``workers``): a Ray Data
pipeline over the pending files with a pool of recognizer actors, each loading the bundle once; the driver
writes the shards as their records come back, in input order, so both give the same files (the records differ
only in ``seconds`` and ``timings``). Ray is ``pip install "edgeser[ray]"``; Parquet needs ``pyarrow`` (in the
same extra, and in ``edgeser[batch]``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeser.errors import DatasetError, EdgeserError, InputError
from edgeser.results import Prediction

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
RECORD_FIELDS = ("path", "status", "error", "error_type", "duration_s", "seconds", *Prediction.FIELDS)
"""Every record has these keys: the file's, then :meth:`Prediction.to_dict`'s (``None`` where one does not apply)."""
FLOAT_FIELDS = {"duration_s", "seconds", "voiced_s", "alignment_confidence"}
JOB = "batch.json"
SUMMARY = "summary.json"


@dataclass(frozen=True)
class BatchItem:
    """One input file: its position in the job, its path as the manifest gives it, where it is, its transcript."""

    index: int
    path: str
    resolved: str
    text: str | None = None


@dataclass(frozen=True)
class BatchConfig:
    """What every file is run with (recorded in ``batch.json``; a resumed job must use the same).

    Attributes:
        bundle: A bundle folder or ``"default"``.
        segments: Also record timed words, syllables and phones.
        check_speech: Refuse files that hold no speech (silero-vad first), as ``edgeser predict`` does.
        threads: ONNX Runtime threads per recognizer (1: the results do not depend on how many workers run).
        shard_size: Files per shard.
        profile: A speaker or site profile from ``edgeser enroll`` (a JSON file) that every file is predicted with
            (:class:`edgeser.speaker.SpeakerProfile`); ``batch.json`` records its sha256 beside the path.
    """

    bundle: str = "default"
    segments: bool = False
    check_speech: bool = True
    threads: int = 1
    shard_size: int = 256
    profile: str | None = None

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise InputError(f"shard_size must be at least 1, got {self.shard_size}")
        if self.threads < 0:
            raise InputError(f"threads must be 0 (automatic) or more, got {self.threads}")


def read_inputs(source: str | os.PathLike[str]) -> list[BatchItem]:
    """The files of a manifest CSV (a ``path`` column, relative to the CSV's folder or absolute; an optional
    ``text`` column) or of a folder (every audio file under it, sorted; paths relative to the folder).

    Raises:
        DatasetError: The source is missing, the CSV has no ``path`` column or a row without a path, or there
            are no files.
    """
    src = Path(source)
    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
        items = [BatchItem(i, str(p.relative_to(src)), str(p.resolve())) for i, p in enumerate(files)]
    elif src.is_file():
        items = _read_csv(src)
    else:
        raise DatasetError(f"{src}: no such file or folder (give a manifest CSV with a 'path' column, or a folder "
                           "of audio files)")
    if not items:
        raise DatasetError(f"{src}: no audio files found (looked for {', '.join(AUDIO_SUFFIXES)})")
    return items


def _read_csv(path: Path) -> list[BatchItem]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
            fields = rows[0].keys() if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{path}: cannot read it as a CSV manifest ({e})") from e
    if rows and "path" not in fields:
        raise DatasetError(f"{path}: no 'path' column (it has {sorted(k for k in fields if k)}); the manifest "
                           "needs one path per row, relative to the CSV's folder or absolute")
    items = []
    for i, row in enumerate(rows):
        given = (row.get("path") or "").strip()
        if not given:
            raise DatasetError(f"{path}: row {i + 2} has no path")
        text = (row.get("text") or "").strip() or None
        resolved = Path(given).expanduser()
        resolved = resolved if resolved.is_absolute() else path.parent / resolved
        items.append(BatchItem(i, given, str(resolved.resolve()), text))
    return items


# ---- one file ----

class Recognise:
    """Loads the bundle once and turns items into records (used in this process and by each Ray actor)."""

    def __init__(self, config: BatchConfig) -> None:
        from edgeser import default
        from edgeser.options import RuntimeOptions
        from edgeser.recognizer import EmotionRecognizer

        self.config = config
        self.recognizer = EmotionRecognizer.from_bundle(default.resolve(config.bundle),
                                                        RuntimeOptions(threads=config.threads))
        from edgeser.speaker import SpeakerProfile

        self.profile: SpeakerProfile | None = None
        if config.profile is not None:
            self.profile = SpeakerProfile.load(config.profile)
            self.recognizer.check_profile(self.profile)
        self.recognizer.warm_up()

    def record(self, item: BatchItem) -> dict[str, Any]:
        """The record of one file; a failure is the record's ``error``, never an exception."""
        t0 = time.perf_counter()
        out: dict[str, Any] = dict.fromkeys(RECORD_FIELDS)
        out["path"] = item.path
        try:
            wave = self.recognizer.load_audio(item.resolved)  # at the encoder's rate
            rate = self.recognizer.speech.frames.sample_rate
            out["duration_s"] = round(wave.size / rate, 3)
            pred = self.recognizer.predict(wave, item.text, sample_rate=rate, segments=self.config.segments,
                                           check_speech=self.config.check_speech, speaker=self.profile)
        except Exception as e:  # recorded and counted; the job goes on
            if not isinstance(e, EdgeserError):
                log.exception("%s: recognition failed", item.path)
            out.update(status="error", error=str(e), error_type=type(e).__name__)
        else:  # the prediction as `edgeser predict --json` gives it: one shape everywhere
            out.update(status="ok", **pred.to_dict())
        out["seconds"] = round(time.perf_counter() - t0, 4)
        return out

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        """Ray Data's ``map_batches`` form: columns in, columns out (each record as one JSON string, so that
        Ray need not infer a schema for nested, sometimes-missing values)."""
        items = [BatchItem(int(i), str(p), str(r), None if t is None or t == "" else str(t))
                 for i, p, r, t in zip(batch["index"], batch["path"], batch["resolved"], batch["text"], strict=True)]
        return {"index": [it.index for it in items],
                "record": [json.dumps(self.record(it), allow_nan=False) for it in items]}


# ---- the job ----

def job_description(items: Sequence[BatchItem], config: BatchConfig) -> dict[str, Any]:
    """What ``batch.json`` records: the inputs' digest and count, and the settings."""
    digest = hashlib.sha256()
    for it in items:
        digest.update(json.dumps([it.path, it.resolved, it.text]).encode() + b"\n")
    out = {"format": "edgeser-batch/2", "files": len(items), "inputs_sha256": digest.hexdigest(),
           "config": asdict(config)}
    if config.profile is not None:  # a profile rewritten in place is another job
        out["profile_sha256"] = hashlib.sha256(Path(config.profile).read_bytes()).hexdigest()
    return out


def shard_name(k: int) -> str:
    return f"part-{k:05d}"


def _shard_done(out: Path, k: int) -> bool:
    return (out / f"{shard_name(k)}.jsonl").is_file() and (out / f"{shard_name(k)}.parquet").is_file()


def write_shard(out: Path, k: int, records: Sequence[dict[str, Any]]) -> None:
    """``part-k.jsonl`` and ``part-k.parquet``, each written to a temporary name and renamed (the Parquet last:
    a shard counts as done when both are there)."""
    pa, parquet = _pyarrow()
    name = shard_name(k)
    tmp = out / f".{name}.jsonl.tmp"
    with tmp.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n")
    os.replace(tmp, out / f"{name}.jsonl")
    # nested values (probabilities, branches, timings, words, ...) as JSON text: one schema for every shard,
    # whatever each file gave (an error has no probabilities, a frames-only head no segments)
    columns = {k: [json.dumps(v, allow_nan=False) if isinstance(v := r.get(k), (dict, list)) else v for r in records]
               for k in RECORD_FIELDS}
    schema = pa.schema([(k, pa.float64() if k in FLOAT_FIELDS else pa.string()) for k in RECORD_FIELDS])
    tmp = out / f".{name}.parquet.tmp"
    parquet.write_table(pa.table(columns, schema=schema), str(tmp))
    os.replace(tmp, out / f"{name}.parquet")


def _pyarrow() -> tuple[Any, Any]:
    """``pyarrow`` and ``pyarrow.parquet``, or the install command."""
    from edgeser._optional import require

    return (require("pyarrow", "batch", "writing Parquet shards"),
            require("pyarrow.parquet", "batch", "writing Parquet shards"))


def run(items: Sequence[BatchItem], out: str | os.PathLike[str], config: BatchConfig | None = None, *,
        ray_address: str | None = None, workers: int | None = None, overwrite: bool = False,
        progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Predict every item into shards under ``out`` (resuming a job already there) and write ``summary.json``.

    Args:
        items: From :func:`read_inputs`.
        out: The job's folder.
        config: Bundle and settings.
        ray_address: Run on Ray: ``"local"`` starts a local instance (``ray.init()``), ``"auto"`` joins the one
            ``ray start --head`` started on this machine, ``ray://host:10001`` or ``host:6379`` a cluster.
            ``None`` with ``workers`` given also starts a local one.
        workers: Recognizer actors on Ray (default: the cluster's CPUs).
        overwrite: Start again when ``out`` holds a job with other inputs or settings.
        progress: Called with (files predicted, files in all) after each file (a file is kept, for a resumed job,
            once its shard is written).

    Returns:
        The summary: files, ok and error counts (by error type), shards written and skipped, seconds, files/s.

    Raises:
        InputError: ``out`` holds another job (and not ``overwrite``), or is a file.
        BackendUnavailableError: pyarrow (or, on Ray, ray) is not installed.
    """
    config = config or BatchConfig()
    _pyarrow()  # before any work: say now if Parquet cannot be written
    target = Path(out)
    job = job_description(items, config)
    _claim(target, job, overwrite)
    shards = [list(items[i : i + config.shard_size]) for i in range(0, len(items), config.shard_size)]
    todo = [k for k in range(len(shards)) if not _shard_done(target, k)]
    pending = {k: len(shards[k]) for k in todo}
    done_files = len(items) - sum(pending.values())
    if progress:
        progress(done_files, len(items))
    t0 = time.perf_counter()
    on_ray = ray_address is not None or workers is not None
    left = [it for k in todo for it in shards[k]]
    records = (iter(()) if not left else _on_ray(left, config, ray_address, workers) if on_ray
               else _here(left, config))
    buffers: dict[int, list[dict[str, Any]]] = {k: [] for k in todo}
    owner = {it.index: k for k in todo for it in shards[k]}
    for index, record in records:
        k = owner[index]
        buffers[k].append(record)
        done_files += 1
        if progress:
            progress(done_files, len(items))
        if len(buffers[k]) == pending[k]:
            write_shard(target, k, buffers.pop(k))
    seconds = time.perf_counter() - t0
    summary = _summarise(target, len(shards), len(todo), sum(pending.values()), seconds, on_ray, workers)
    tmp = target / f".{SUMMARY}.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, target / SUMMARY)
    return summary


def _claim(target: Path, job: dict[str, Any], overwrite: bool) -> None:
    """Make ``target`` this job's folder: new, the same job (resume), or (with ``overwrite``) emptied of another."""
    if target.exists() and not target.is_dir():
        raise InputError(f"{target}: is a file; --out names the job's folder")
    record = target / JOB
    if record.is_file():
        try:
            previous = json.loads(record.read_text())
        except (OSError, ValueError):
            previous = None
        if previous != job:
            if not overwrite:
                raise InputError(f"{target}: holds a batch job of other inputs or settings; choose another --out, "
                                 "or --overwrite to start it again")
            for p in target.glob("part-*"):
                p.unlink()
            (target / SUMMARY).unlink(missing_ok=True)
    elif target.is_dir() and any(target.glob("part-*")):
        raise InputError(f"{target}: holds shards but no {JOB}; choose another --out")
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.glob(".*.tmp"):  # a killed run's half-written shard
        stale.unlink()
    tmp = target / f".{JOB}.tmp"
    tmp.write_text(json.dumps(job, indent=2) + "\n")
    os.replace(tmp, record)


def _here(items: Sequence[BatchItem], config: BatchConfig) -> Iterator[tuple[int, dict[str, Any]]]:
    worker = Recognise(config)
    for it in items:
        yield it.index, worker.record(it)


def _on_ray(items: Sequence[BatchItem], config: BatchConfig, address: str | None,
            workers: int | None) -> Iterator[tuple[int, dict[str, Any]]]:
    """The items on Ray through a pool of :class:`Recognise` actors; records come back in input order."""
    rows = [{"index": it.index, "path": it.path, "resolved": it.resolved, "text": it.text or ""} for it in items]
    for row in ray_map(rows, Recognise, (config,), address=address, workers=workers, threads=config.threads,
                       what="running a batch job on Ray"):
        yield int(row["index"]), json.loads(row["record"])


def ray_map(rows: list[dict[str, Any]], worker: type, args: tuple[Any, ...], *, address: str | None,
            workers: int | None, threads: int = 1, what: str = "running on Ray") -> Iterator[dict[str, Any]]:
    """Ray Data over ``rows`` through a pool of ``worker`` actors: each is made once (``worker(*args)``, so a
    bundle is loaded once per actor) and then called with batches of 8 rows as columns, returning columns; the
    rows it returns come back in input order. ``edgeser batch --ray`` and the torch side's feature extraction
    (``edgeser evaluate --ray``) run this way.

    Args:
        address: ``"local"`` or ``None`` starts a local instance (``ray.init()``); ``"auto"`` joins the one
            ``ray start --head`` started on this machine; ``host:6379`` or ``ray://host:10001`` a cluster.
        workers: Actors (default: the cluster's CPUs).
        threads: CPUs each actor asks for (its ONNX Runtime threads).
        what: For the install message when ray is missing.
    """
    from edgeser._optional import require

    ray = require("ray", "ray", what)
    require("ray.data", "ray", what)
    if not ray.is_initialized():
        # "local" is a new instance even where RAY_ADDRESS is set or a `ray start` here left its address behind
        # (ray.init() with no address would join that cluster, or retry it for minutes when it has stopped)
        kwargs: dict[str, Any] = {"address": address or "local", "include_dashboard": False,
                                  "log_to_driver": False, "logging_level": logging.WARNING}
        if address not in (None, "local"):
            _answers(address, ray)
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            from edgeser.errors import BackendError

            raise BackendError(f"cannot reach Ray at {address or 'a new local instance'} ({e}); start one with "
                               "`ray start --head`, or leave out --ray-address for a local instance; a cluster "
                               f"with token authentication also needs {TOKEN_HINT}") from e
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False  # the caller's progress bar counts the rows; Ray Data's INFO lines go too
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    pool = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    # batches of 8 rows per call: Ray's per-call overhead is paid once per 8 (order is kept either way)
    ds = ray.data.from_items(rows).map_batches(worker, fn_constructor_args=args, batch_size=8,
                                               compute=ray.data.ActorPoolStrategy(size=pool),
                                               num_cpus=max(1, threads))
    yield from ds.iter_rows()


TOKEN_HINT = ("RAY_AUTH_MODE=token and its token (RAY_AUTH_TOKEN, or ~/.ray/auth_token) here: Ray turns "
              "authentication on for `ray start --head` once that file exists, and joins an address named "
              "explicitly without it")


def _answers(address: str, ray: Any) -> None:
    """Fail at once where ``ray.init`` would retry for minutes: the address (``auto``: ``RAY_ADDRESS``, or the
    cluster the last ``ray start`` on this machine recorded) must take a TCP connection within 5 s."""
    from edgeser.errors import BackendError

    target = address
    if address == "auto":
        try:
            target = os.environ.get("RAY_ADDRESS") or ray._private.utils.read_ray_address()
        except AttributeError:  # Ray moved its private helper: let ray.init find the cluster
            return
        if not target:
            raise BackendError("--ray-address auto: no Ray cluster has been started on this machine; start one "
                               "with `ray start --head`, or leave out --ray-address for a local instance")
    host, _, port = target.split("://", 1)[-1].rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        seen = address if target == address else f"{address} (the cluster last recorded here, {target})"
        raise BackendError(f"cannot reach Ray at {seen}: {e}; start a head there with `ray start --head`, "
                           "or leave out --ray-address for a local instance") from e


def _summarise(target: Path, shards: int, written: int, processed: int, seconds: float, on_ray: bool,
               workers: int | None) -> dict[str, Any]:
    counts: dict[str, int] = {}
    files = ok = 0
    audio_s = 0.0
    for r in read_records(target):
        files += 1
        if r["status"] == "ok":
            ok += 1
            audio_s += r["duration_s"] or 0.0
        else:
            counts[r["error_type"]] = counts.get(r["error_type"], 0) + 1
    return {"files": files, "ok": ok, "errors": files - ok, "errors_by_type": dict(sorted(counts.items())),
            "shards": shards, "shards_written": written, "shards_skipped": shards - written,
            "files_this_run": processed, "seconds_this_run": round(seconds, 3),
            "files_per_s_this_run": round(processed / seconds, 3) if processed and seconds > 0 else None,
            "audio_s_ok": round(audio_s, 3), "backend": "ray" if on_ray else "this process", "workers": workers}


def read_records(out: str | os.PathLike[str]) -> Iterable[dict[str, Any]]:
    """Every record of a job's JSONL shards, in input order."""
    for path in sorted(Path(out).glob("part-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            yield json.loads(line)


def evaluate(bundle: str | os.PathLike[str], utterances: Sequence[Any], out: str | os.PathLike[str], *,
             ray_address: str | None = None, workers: int | None = None, threads: int = 1,
             keep_predictions: bool = False) -> dict[str, Any]:
    """:func:`edgeser.metrics.evaluate` through a batch job (in this process or on Ray): every labelled
    utterance predicted (its transcript used where present; no speech check, as ``evaluate``), written under
    ``out``, and scored from the records. ``edgeser bench --ray`` scores its variants this way."""
    from edgeser import default
    from edgeser.metrics import scores
    from edgeser.model.bundle import read_manifest

    items = []
    for i, u in enumerate(utterances):
        if u.path is None:
            raise InputError(f"{u.id}: no audio to predict from")
        items.append(BatchItem(i, str(u.id), str(Path(u.path).resolve()), u.transcript or None))
    config = BatchConfig(bundle=str(bundle), check_speech=False, threads=threads)
    run(items, out, config, ray_address=ray_address, workers=workers, overwrite=True)
    predicted = [r["label"] if r["status"] == "ok" else None for r in read_records(out)]
    labels = read_manifest(default.resolve(bundle)).labels
    return scores([u.label for u in utterances], predicted, labels, keep_predictions=keep_predictions)
