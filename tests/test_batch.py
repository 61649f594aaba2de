"""Corpus jobs (edgeser batch): inputs, one record per file with errors recorded, atomic shards, resuming,
Parquet equal to JSONL, and Ray giving exactly the sequential run's records."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from edgeser import EmotionRecognizer, RuntimeOptions
from edgeser.batch import RECORD_FIELDS, BatchConfig, read_inputs, read_records, run
from edgeser.cli import main
from edgeser.errors import DatasetError, InputError
from tests.conftest import SAMPLE

pytest.importorskip("pyarrow", reason="Parquet shards need pyarrow (edgeser[batch])")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """Five files: three copies of the sample (one in a subfolder), one that is not audio, one silent."""
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    for name in ("a.wav", "b.wav", "sub/e.wav"):
        shutil.copy(SAMPLE, root / name)
    (root / "c.wav").write_text("not audio")
    sf.write(root / "d.flac", np.zeros(16000, np.float32), 16000)
    (root / "notes.txt").write_text("ignored")
    return root


def stable(records: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    """Records without what depends on the run (wall time and stage timings)."""
    return [{k: v for k, v in r.items() if k not in ("seconds", "timings")} for r in records]


def test_inputs_from_a_folder_and_from_a_manifest(corpus: Path, tmp_path: Path) -> None:
    items = read_inputs(corpus)
    assert [it.path for it in items] == ["a.wav", "b.wav", "c.wav", "d.flac", "sub/e.wav"]
    assert [it.index for it in items] == list(range(5)) and all(Path(it.resolved).is_absolute() for it in items)
    manifest = tmp_path / "lists" / "m.csv"
    manifest.parent.mkdir()
    manifest.write_text(f"path,text\n../corpus/a.wav,kids are talking by the door\n{corpus / 'b.wav'},\n")
    a, b = read_inputs(manifest)
    assert a.path == "../corpus/a.wav" and a.resolved == str((corpus / "a.wav").resolve())  # relative to the CSV
    assert a.text == "kids are talking by the door" and b.text is None and b.resolved == str(corpus / "b.wav")
    (tmp_path / "bad.csv").write_text("file\na.wav\n")
    with pytest.raises(DatasetError, match="no 'path' column"):
        read_inputs(tmp_path / "bad.csv")
    (tmp_path / "hole.csv").write_text("path\na.wav\n\n ,x\n")
    with pytest.raises(DatasetError, match="row 3 has no path"):
        read_inputs(tmp_path / "hole.csv")
    with pytest.raises(DatasetError, match="no such file or folder"):
        read_inputs(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no audio files"):
        read_inputs(tmp_path / "empty")


def test_every_file_gets_a_record_and_failures_are_counted_not_fatal(corpus: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "job"
    summary = run(read_inputs(corpus), out, BatchConfig(shard_size=2))
    records = list(read_records(out))
    assert [r["path"] for r in records] == ["a.wav", "b.wav", "c.wav", "d.flac", "sub/e.wav"]
    assert all(set(r) == set(RECORD_FIELDS) for r in records)
    assert [r["status"] for r in records] == ["ok", "ok", "error", "error", "ok"]
    ok, bad = records[0], records[2]
    assert ok["label"] in ok["probabilities"] and abs(sum(ok["probabilities"].values()) - 1) < 1e-3
    assert ok["duration_s"] == pytest.approx(sf.info(SAMPLE).duration, abs=1e-3) and ok["error"] is None
    assert bad["label"] is None and bad["error_type"] == "AudioError" and "c.wav" in bad["error"]
    assert "silent" in records[3]["error"]
    # the prediction's fields are `edgeser predict --json`'s (Prediction.to_dict), the same shape everywhere
    rec = EmotionRecognizer.from_bundle("default", RuntimeOptions(threads=1))
    predicted = rec.predict(SAMPLE, check_speech=True).to_dict()
    assert set(predicted) - {"timings"} <= set(ok) and ok["words"] is None and ok["voiced_s"] is not None
    assert ok["label"] == predicted["label"] and ok["speaker"] == predicted["speaker"]
    assert ok["probabilities"] == pytest.approx(predicted["probabilities"], abs=1e-6)
    assert ok["voiced_s"] == predicted["voiced_s"] and set(ok["timings"]) == set(predicted["timings"])
    assert summary["files"] == 5 and summary["ok"] == 3 and summary["errors_by_type"] == {"AudioError": 2}
    assert summary["shards"] == summary["shards_written"] == 3
    assert json.loads((out / "summary.json").read_text())["files"] == 5
    assert sorted(p.name for p in out.iterdir()) == ["batch.json", *sorted(
        f"part-{k:05d}.{ext}" for k in range(3) for ext in ("jsonl", "parquet")), "summary.json"]
    for k in range(3):  # the Parquet shard holds the JSONL shard's records (nested values as JSON text)
        table = pq.read_table(out / f"part-{k:05d}.parquet").to_pylist()
        lines = [json.loads(x) for x in (out / f"part-{k:05d}.jsonl").read_text().splitlines()]
        assert [t["path"] for t in table] == [r["path"] for r in lines]
        assert [json.loads(t["probabilities"]) if t["probabilities"] else None for t in table] == \
               [r["probabilities"] for r in lines]


def test_a_rerun_resumes_and_other_inputs_are_refused(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "job"
    items = read_inputs(corpus)
    run(items, out, BatchConfig(shard_size=2))
    before = (out / "part-00000.jsonl").read_bytes()
    (out / "part-00001.parquet").unlink()  # as if killed while writing shard 1
    (out / ".part-00001.parquet.tmp").write_bytes(b"half")
    again = run(items, out, BatchConfig(shard_size=2))
    assert again["shards_written"] == 1 and again["shards_skipped"] == 2 and again["files_this_run"] == 2
    assert (out / "part-00000.jsonl").read_bytes() == before and not list(out.glob(".*.tmp"))
    assert again["files"] == 5
    with pytest.raises(InputError, match="other inputs or settings"):
        run(items[:3], out, BatchConfig(shard_size=2))
    with pytest.raises(InputError, match="other inputs or settings"):
        run(items, out, BatchConfig(shard_size=2, segments=True))
    fresh = run(items[:3], out, BatchConfig(shard_size=2), overwrite=True)
    assert fresh["files"] == 3 and fresh["shards_written"] == 2 and not (out / "part-00002.jsonl").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        run(items, tmp_path / "file")


def test_the_command(corpus: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["batch", str(corpus), "--out", str(tmp_path / "job"), "--shard-size", "4"])
    assert result.exit_code == 0, result.output
    assert '"errors": 2' in result.output and "2 of 5 files failed" in result.output
    result = CliRunner().invoke(main, ["batch", str(corpus), "--out", str(tmp_path / "job"), "--workers", "2"])
    assert result.exit_code == 2 and "--workers are for --ray" in result.output
    result = CliRunner().invoke(main, ["batch", str(tmp_path / "nothing"), "--out", str(tmp_path / "j2")])
    assert result.exit_code == 1 and "no such file or folder" in result.output and "Traceback" not in result.output


@pytest.mark.integration
def test_on_ray_the_records_are_the_sequential_runs(corpus: Path, tmp_path: Path) -> None:
    """A local Ray instance with two recognizer actors writes the same shards, record for record (but for wall
    time and stage timings), as the run in this process."""
    ray = pytest.importorskip("ray", reason="Ray runs need edgeser[ray]")
    items = read_inputs(corpus)
    config = BatchConfig(shard_size=2)
    run(items, tmp_path / "here", config)
    from edgeser.batch import evaluate as batch_evaluate
    from edgeser.metrics import evaluate

    try:
        summary = run(items, tmp_path / "ray", config, ray_address="local", workers=2)
        scored = batch_evaluate("default", labelled(corpus), tmp_path / "acc", ray_address="local", workers=2,
                                keep_predictions=True)
    finally:
        ray.shutdown()
    assert scored == evaluate(EmotionRecognizer.from_bundle("default"), labelled(corpus), keep_predictions=True)
    assert summary["backend"] == "ray" and summary["workers"] == 2
    assert stable(list(read_records(tmp_path / "ray"))) == stable(list(read_records(tmp_path / "here")))


@pytest.mark.integration
def test_on_a_cluster_that_ray_start_began(corpus: Path, tmp_path: Path) -> None:
    """``ray start --head`` (token authentication on, as Ray turns it on once ~/.ray/auth_token exists), joined by
    its address and by ``auto``: the sequential run's records; an address where nothing listens is refused at
    once, in one line; once the head has gone, ``--ray`` alone still starts a local instance."""
    pytest.importorskip("ray", reason="Ray runs need edgeser[ray]")
    ray_cli = Path(sys.executable).with_name("ray")
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env.pop("RAY_ADDRESS", None)
    head = subprocess.Popen([str(ray_cli), "start", "--head", "--block", "--port", str(port), "--num-cpus", "2",
                             "--include-dashboard=false", "--disable-usage-stats"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    edgeser = [sys.executable, "-c", "from edgeser.cli import main; main()", "batch", str(corpus), "--shard-size", "2"]
    try:
        deadline = time.monotonic() + 60
        while not answers(port):
            assert head.poll() is None and time.monotonic() < deadline, "ray start --head did not come up"
            time.sleep(0.5)
        runs = {"address": ([f"127.0.0.1:{port}"], env),
                "auto": (["auto"], {**env, "RAY_ADDRESS": f"127.0.0.1:{port}"})}
        for name, (address, run_env) in runs.items():
            done = subprocess.run([*edgeser, "--out", str(tmp_path / name), "--ray", "--ray-address", *address,
                                   "--workers", "2"], env=run_env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr[-2000:]
            assert json.loads(done.stdout)["backend"] == "ray"
    finally:
        os.killpg(head.pid, signal.SIGKILL)  # a throwaway head, its GCS and raylet with it (SIGTERM drains 30 s)
        head.wait()
    run(read_inputs(corpus), tmp_path / "here", BatchConfig(shard_size=2))
    for name in runs:
        assert stable(list(read_records(tmp_path / name))) == stable(list(read_records(tmp_path / "here")))
    t0 = time.monotonic()
    done = subprocess.run([*edgeser, "--out", str(tmp_path / "nowhere"), "--ray", "--ray-address",
                           f"127.0.0.1:{free_port()}"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "cannot reach Ray at 127.0.0.1:" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and time.monotonic() - t0 < 60
    # --ray alone is a new local instance, though RAY_ADDRESS and the address file name the head that has gone
    done = subprocess.run([*edgeser, "--out", str(tmp_path / "local"), "--ray", "--workers", "1"],
                          env={**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert stable(list(read_records(tmp_path / "local"))) == stable(list(read_records(tmp_path / "here")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def labelled(corpus: Path) -> list:  # type: ignore[type-arg]
    from edgeser.datasets import Utterance

    names = {"a.wav": "angry", "b.wav": "happy", "c.wav": "sad", "d.flac": "neutral", "sub/e.wav": "angry"}
    return [Utterance(n, corpus / n, "s1", "s1", label, "kids are talking by the door" if n == "b.wav" else None)
            for n, label in names.items()]


def test_scoring_through_a_batch_job_is_metrics_evaluate(corpus: Path, tmp_path: Path) -> None:
    """edgeser bench --ray scores through this: the same UA, WA, confusion, failures and predictions as
    metrics.evaluate (the unreadable and the silent file counted as failed)."""
    from edgeser import EmotionRecognizer
    from edgeser.batch import evaluate as batch_evaluate
    from edgeser.metrics import evaluate

    utts = labelled(corpus)
    want = evaluate(EmotionRecognizer.from_bundle("default"), utts, keep_predictions=True)
    got = batch_evaluate("default", utts, tmp_path / "acc", keep_predictions=True)
    assert got == want and got["failed"] == 2 and got["utterances"] == 3


def test_a_site_profile_is_used_for_every_file_and_recorded(corpus: Path, tmp_path: Path) -> None:
    """``edgeser batch --speaker SITE.json``: every file predicted with the profile (the default's profile head), the
    record says so, batch.json holds the profile's sha256, and a profile rewritten in place makes another job."""
    site = tmp_path / "site.json"
    result = CliRunner().invoke(main, ["enroll", str(SAMPLE), "--site", "--out", str(site)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "job"
    result = CliRunner().invoke(main, ["batch", str(corpus), "--out", str(out), "--speaker", str(site)])
    assert result.exit_code == 0, result.output
    records = {r["path"]: r for r in read_records(out)}
    assert records["a.wav"]["speaker"].startswith("site profile") and records["a.wav"]["status"] == "ok"
    plain = EmotionRecognizer.from_bundle("default").predict(SAMPLE)
    assert records["a.wav"]["probabilities"] != plain.probabilities  # the profile head, not the plain one
    job = json.loads((out / "batch.json").read_text())
    assert job["config"]["profile"] == str(site.resolve()) and len(job["profile_sha256"]) == 64
    site.write_text(site.read_text().replace('"utterances": 1', '"utterances": 2'))
    result = CliRunner().invoke(main, ["batch", str(corpus), "--out", str(out), "--speaker", str(site)])
    assert result.exit_code == 1 and "other inputs or settings" in result.output
    result = CliRunner().invoke(main, ["batch", str(corpus), "--out", str(tmp_path / "j2"), "--speaker",
                                       str(tmp_path / "missing.json")])
    assert result.exit_code == 1 and "no such speaker profile" in result.output and "Traceback" not in result.output


def test_progress_counts_files_not_shards(corpus: Path, tmp_path: Path) -> None:
    """A job smaller than one shard moves its progress bar file by file (issue 25, item 20: it counted written
    shards, so it sat at 0% until the end of any job under 256 files)."""
    items = read_inputs(corpus)
    seen: list[tuple[int, int]] = []
    run(items, tmp_path / "job", BatchConfig(), progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, len(items)) and seen[-1] == (len(items), len(items))
    assert [d for d, _ in seen] == list(range(len(items) + 1))


def test_what_writes_to_stdout_during_a_job_goes_to_stderr() -> None:
    """`edgeser batch` prints its summary as the only thing on stdout: what a library writes to the process's stdout
    meanwhile (Ray's warnings, from C or Python) goes to stderr (a Ray run once ended its JSON with a warning)."""
    code = ("import os, sys\n"
            "from edgeser.cli.main import stdout_to_stderr\n"
            "with stdout_to_stderr():\n"
            "    os.write(1, b'from C\\n')\n"
            "    print('from Python')\n"
            "print('{\"ok\": 1}')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ok": 1}
    assert "from C" in done.stderr and "from Python" in done.stderr
