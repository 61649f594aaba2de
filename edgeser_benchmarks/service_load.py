"""Load on the WebSocket service: how many robots one machine serves at real time.

``edgeser serve`` runs in a child process with the bundle; for each client count, that many clients connect
at once and each streams held-out RAVDESS files (actors 17-20; each file one utterance, joined with 1.5-3 s
of -60 dBFS noise, each client starting in the gap before another file) at real-time pace in 100 ms messages for
``--minutes``, then sends ``end``. Per run:

- utterances: files sent (whose end was streamed), files answered (a result overlaps them), unanswered
  (sent less answered), results, dropped (utterances the server counted in ``end``), and lost (unanswered files
  beyond the dropped count: the server counts utterances, and a file split at a pause is two);
- latency, end of speech → result as the client sees it (from sending the message that holds the end of
  speech, as the detector placed it, to receiving the result; it includes the 0.3 s of silence the detector
  waits for), p50 / p95, and the server's own ``latency_s`` p50 / p95;
- connections closed by the server before ``end`` (must be 0);
- the server's memory: peak RSS (VmHWM), RSS after the clients have left, and RSS sampled every
  ``--sample-s`` while they stream (the soak: does memory stay flat over an hour?).

    python -m edgeser_benchmarks.service_load --clients 4 --clients 16 --clients 32 --clients 64 --clients 96 \\
        --clients 128 --minutes 1 --out benchmarks/results/service_load.json
    python -m edgeser_benchmarks.service_load --clients 16 --minutes 60 \
        --out benchmarks/results/service_soak.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeser.audio import SAMPLE_RATE
from edgeser.datasets import load_ravdess
from edgeser_benchmarks.provenance import write_result
from edgeser_benchmarks.stats import percentiles
from edgeser_benchmarks.stream_bench import DATA, HELD_OUT, joined

CHUNK_S = 0.1


def memory_mb(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    values = {line.split(":")[0]: float(line.split()[1]) / 1024 for line in status
              if line.startswith(("VmRSS", "VmHWM"))}
    return {"rss_mb": round(values["VmRSS"], 1), "peak_rss_mb": round(values["VmHWM"], 1)}


def milliseconds(latencies: list[float]) -> dict[str, float] | None:
    return {k: round(1000 * v, 1) for k, v in percentiles(latencies, (50, 95)).items()} if latencies else None


def client(url: str, wave: np.ndarray, spans: list[tuple[float, float]], seconds: float, out: dict[str, Any]) -> None:
    """Stream ``wave`` (cycled) at real time for ``seconds``, logging when each message went out and each result
    came in; then ``end``."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    step = int(CHUNK_S * SAMPLE_RATE)
    sent_until: list[float] = []  # stream seconds sent after each message
    sent_at: list[float] = []  # and when
    results: list[tuple[float, dict[str, Any]]] = []
    out.update(sent_until=sent_until, sent_at=sent_at, results=results, closed_early=False, end=None)
    pcm = (np.clip(wave, -1, 1) * 32767).astype("<i2")
    stream = np.tile(pcm, int(np.ceil(seconds * SAMPLE_RATE / pcm.size)))[: int(seconds * SAMPLE_RATE)]
    out.update(spans=spans, period=wave.size / SAMPLE_RATE, total=stream.size / SAMPLE_RATE)
    try:
        with connect(url, open_timeout=30, max_size=2**22) as ws:
            def read() -> None:
                try:
                    for m in ws:
                        results.append((time.perf_counter(), json.loads(m)))
                except ConnectionClosed:
                    pass

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            t0 = time.perf_counter()
            for i in range(0, stream.size, step):
                delay = t0 + (i + step) / SAMPLE_RATE - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                piece = stream[i : i + step]
                ws.send(piece.tobytes())
                sent_at.append(time.perf_counter())
                sent_until.append((i + piece.size) / SAMPLE_RATE)
            ws.send(json.dumps({"type": "end"}))
            reader.join(60)
    except ConnectionClosed:
        out["closed_early"] = True
    final = [m for _, m in results if m.get("type") == "end"]
    out["end"] = final[0] if final else None
    out["closed_early"] = out["closed_early"] or not final


def file_counts(out: dict[str, Any]) -> tuple[int, int]:
    """``(files whose end was streamed, those of them an utterance result overlaps)``: the detector found a file
    when one of the results overlaps it."""
    period, total, spans = out["period"], out["total"], out["spans"]
    complete = {(lap, i) for lap in range(int(total // period) + 1) for i, (_, e) in enumerate(spans)
                if lap * period + e <= total}
    found = set()
    for _, m in out["results"]:
        if m.get("type") == "utterance" and not m.get("partial"):
            for lap, i in complete:
                s, e = spans[i]
                if m["start_s"] < lap * period + e and m["end_s"] > lap * period + s:
                    found.add((lap, i))
    return len(complete), len(found & complete)


def client_latencies(out: dict[str, Any], pad_s: float = 0.1) -> list[float]:
    """Each answered utterance: its result's arrival minus when the message holding its end of speech
    (``end_s`` less the detector's end padding) was sent."""
    until = np.asarray(out["sent_until"])
    latencies = []
    for arrived, m in out["results"]:
        if m.get("type") == "utterance" and not m.get("partial") and until.size:
            k = min(int(np.searchsorted(until, m["end_s"] - pad_s)), until.size - 1)
            latencies.append(arrived - out["sent_at"][k])
    return latencies


def sample_memory(pid: int, every_s: float, stop: threading.Event, out: list[tuple[float, float]]) -> None:
    """``(minutes since start, RSS MB)`` every ``every_s`` until ``stop``."""
    t0 = time.perf_counter()
    while not stop.wait(every_s):
        out.append((round((time.perf_counter() - t0) / 60, 2), memory_mb(pid)["rss_mb"]))


def run(clients: int, minutes: float, port: int, pid: int, wave: np.ndarray, spans: list[tuple[float, float]],
        sample_s: float = 30.0) -> dict[str, Any]:
    outs: list[dict[str, Any]] = [{} for _ in range(clients)]
    period = wave.size / SAMPLE_RATE
    starts = [0.0] + [e for _, e in spans[:-1]]  # each client starts in the gap after another file: none is cut
    threads = []
    for c in range(clients):
        at = round(starts[c % len(starts)] * SAMPLE_RATE)
        shift, rolled = at / SAMPLE_RATE, np.roll(wave, -at)
        rolled_spans = sorted(((s - shift) % period, (s - shift) % period + e - s) for s, e in spans)
        threads.append(threading.Thread(target=client, args=(f"ws://127.0.0.1:{port}", rolled, rolled_spans,
                                                             minutes * 60, outs[c]), daemon=True))
    timeline: list[tuple[float, float]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_memory, args=(pid, sample_s, stop, timeline), daemon=True)
    sampler.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(minutes * 60 + 120)
    stop.set()
    sampler.join()
    time.sleep(2)
    after = memory_mb(pid)
    counts = [file_counts(o) for o in outs]
    sent, found = sum(c[0] for c in counts), sum(c[1] for c in counts)
    answered = sum(o["end"]["utterances"] for o in outs if o["end"])
    dropped = sum(o["end"]["dropped"] for o in outs if o["end"])
    client_lat = [x for o in outs for x in client_latencies(o)]
    server_lat = [m["latency_s"] for o in outs for _, m in o["results"] if m.get("type") == "utterance"]
    # the server counts dropped utterances, not files: one file may be two utterances (split at a pause), so
    # unanswered files beyond the dropped count are the lost ones (none can be told apart from dropped ones)
    row = {"clients": clients, "minutes": minutes, "files_sent": sent, "files_answered": found,
           "results": answered, "dropped": dropped, "unanswered": sent - found, "lost": max(0, sent - found - dropped),
           "closed_early": sum(bool(o["closed_early"]) for o in outs),
           "audio_dropped_s": round(sum(o["end"]["audio_dropped_s"] for o in outs if o["end"]), 2),
           "client_latency_ms": milliseconds(client_lat), "server_latency_ms": milliseconds(server_lat),
           "server_memory_after": after, "server_rss_mb_timeline": timeline}
    if len(timeline) >= 4:  # growth: the last quarter's mean RSS over the first quarter's (after the first sample)
        q = max(1, len(timeline) // 4)
        row["rss_growth_mb"] = round(float(np.mean([r for _, r in timeline[-q:]]) -
                                           np.mean([r for _, r in timeline[1 : q + 1]])), 1)
    print(json.dumps({k: v for k, v in row.items() if k != "server_rss_mb_timeline"}))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default="default")
    ap.add_argument("--clients", type=int, action="append", required=True)
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--files", type=int, default=12, help="held-out files each client cycles through")
    ap.add_argument("--port", type=int, default=8791)
    ap.add_argument("--sample-s", type=float, default=30.0, help="seconds between memory samples")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/service_load.json"))
    args = ap.parse_args()
    ds = load_ravdess(DATA)
    files = [u.path for u in ds.utterances if u.group in HELD_OUT and u.path is not None][:: 5][: args.files]
    wave, spans = joined(files, seed=0)
    command = ["serve", "--bundle", args.bundle, "--port", str(args.port), "--max-connections",
               str(max(args.clients) + 8)]
    # the server's log goes to a file: a pipe nobody reads fills at 64 KB (a warning per dropped utterance
    # under overload) and then blocks every thread that logs, which stalls the server being measured
    log_file = tempfile.NamedTemporaryFile("w+", prefix="edgeser-serve-", suffix=".log", delete=False)
    server = subprocess.Popen([sys.executable, "-c", "from edgeser.cli import main; main()", *command],
                              stderr=log_file, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def server_log() -> str:
        return Path(log_file.name).read_text(errors="replace")
    try:
        from websockets.sync.client import connect

        for _ in range(120):  # until it listens (the warm-up comes first)
            try:
                with connect(f"ws://127.0.0.1:{args.port}", open_timeout=2) as ws:
                    ws.send(json.dumps({"type": "end"}))
                    ws.recv(timeout=5)
                break
            except OSError:
                time.sleep(1)
        else:
            raise SystemExit(f"the service did not start: {server_log()[-3000:]}")
        if server.poll() is not None:  # what answered is another process on that port
            raise SystemExit(f"the service exited ({server_log()[-3000:]}); is port "
                             f"{args.port} taken? pass --port")
        idle = memory_mb(server.pid)
        rows = [run(n, args.minutes, args.port, server.pid, wave, spans, args.sample_s) for n in args.clients]
        peak = memory_mb(server.pid)["peak_rss_mb"]
    finally:
        server.terminate()
        try:
            code: int | str = server.wait(30)
        except subprocess.TimeoutExpired:  # recorded, not hidden: a clean SIGTERM exit is part of the measure
            server.kill()
            server.wait(10)
            code = "no exit within 30 s of SIGTERM (killed)"
        log_file.close()
    lines = server_log().splitlines()
    Path(log_file.name).unlink()
    result = {"protocol": __doc__.split("\n\n")[1].strip(), "bundle": args.bundle,
              "files": [str(f) for f in files], "server_idle_memory": idle, "server_peak_rss_mb": peak,
              "server_exit_on_sigterm": code, "sample_s": args.sample_s, "runs": rows,
              "server_log": {"lines": len(lines), "last": lines[-10:]}}
    write_result(args.out, result)  # stamped with the machine, its CPU flags, the commit and the command
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
