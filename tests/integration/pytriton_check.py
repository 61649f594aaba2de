"""``edgeser serve --triton`` on a real Triton server (PyTriton's), checked end to end with real audio.

Starts ``edgeser serve --triton`` in a child process, waits until Triton reports the model ready, sends the
bundled sample and three RAVDESS files (when ../shared/data is there) through ``tritonclient``'s HTTP client,
and compares each answer with the runtime's own prediction in this process; sends a second of silence and
records the error it gets; stops the server with SIGTERM and records its exit status.

    python tests/integration/pytriton_check.py --data ../shared/data \
        --out benchmarks/results/pytriton_check.json

Run it in a venv made from the system Python with ``pip install ".[cpu]" nvidia-pytriton`` (see
``edgeser/serving/pytriton.py`` for why).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeser.audio import load_audio
from edgeser_benchmarks.provenance import write_result


def wait_ready(client: Any, server: subprocess.Popen[str], model: str = "edgeser",
               limit_s: float = 120) -> float | None:
    """Seconds until Triton reports ``model`` ready (None when it never does, or the server exits first)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s and server.poll() is None:
        try:
            if client.is_model_ready(model):
                return time.perf_counter() - t0
        except Exception:  # not listening yet
            pass
        time.sleep(0.5)
    return None


def ask(client: Any, files: list[Path], model: str = "edgeser", at_once: bool = False,
        with_silence: bool = True) -> tuple[list[dict[str, Any]], str | None]:
    """Each file through ``model`` (tritonclient HTTP; with ``at_once`` all sent before any answer is read),
    compared with the runtime's prediction in this process; then, with ``with_silence``, a second of silence,
    whose error message is returned beside the answers."""
    import tritonclient.http as http

    from edgeser import EmotionRecognizer

    rec = EmotionRecognizer.from_bundle("default")
    labels = list(rec.bundle.manifest.labels)

    def request(wave: np.ndarray) -> list[Any]:
        inputs = [http.InferInput("AUDIO", [wave.size], "FP32"), http.InferInput("SAMPLE_RATE", [1], "INT32")]
        inputs[0].set_data_from_numpy(wave)
        inputs[1].set_data_from_numpy(np.array([16000], np.int32))
        return inputs

    waves = [load_audio(f) for f in files]
    if at_once:
        pending = [client.async_infer(model, request(w)) for w in waves]
        got = [p.get_result() for p in pending]
    else:
        got = [client.infer(model, request(w)) for w in waves]
    answers = []
    for f, wave, g in zip(files, waves, got, strict=True):
        want = rec.predict(wave, sample_rate=16000)
        probs = np.array([want.probabilities[k] for k in labels])
        answers.append({"file": f.name, "label": g.as_numpy("LABEL")[0].decode(), "runtime_label": want.label,
                        "max_abs_difference": float(np.max(np.abs(g.as_numpy("PROBABILITIES") - probs)))})
    if not with_silence:
        return answers, None
    silent = http.InferInput("AUDIO", [16000], "FP32")
    silent.set_data_from_numpy(np.zeros(16000, np.float32))
    try:
        client.infer(model, [silent])
    except Exception as e:
        return answers, str(e)[:4000]  # PyTriton puts the message at the end of a traceback
    return answers, None


def check_files(data: Path) -> list[Path]:
    """The bundled sample and three RAVDESS files (when the shared data is there)."""
    import edgeser

    sample = Path(edgeser.__file__).parent / "samples" / "kids_talking.wav"
    return [sample, *sorted((data / "ravdess" / "audio").glob("Actor_2*/*.flac"))[:3]]


def stop(server: subprocess.Popen[str]) -> tuple[int | None, list[str]]:
    """SIGTERM, then the exit status (None when it had to be killed after 60 s) and the server's output lines."""
    server.send_signal(signal.SIGTERM)
    try:
        code: int | None = server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        code = None
    return code, (server.stdout.read() if server.stdout else "").splitlines()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8130)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data (RAVDESS files)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    import platform

    import tritonclient.http as http

    files = check_files(args.data)
    server = subprocess.Popen([sys.executable, "-c", "from edgeser.cli import main; main()", "serve", "--triton",
                               "--port", str(args.port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = http.InferenceServerClient(f"127.0.0.1:{args.port}")
    started = wait_ready(client, server)
    answers, error = ask(client, files) if started is not None else ([], None)
    code, log = stop(server)
    result = {"protocol": (__doc__ or "").split("\n\n")[1].replace("\n", " "),
              "python": platform.python_version(), "executable": sys.executable,
              "pytriton": __import__("importlib.metadata").metadata.version("nvidia-pytriton"),
              "started_s": None if started is None else round(started, 1), "answers": answers,
              "all_equal_labels": bool(answers) and all(a["label"] == a["runtime_label"] for a in answers),
              "max_abs_difference": max((a["max_abs_difference"] for a in answers), default=None),
              "silence_error": error, "exit_status_on_sigterm": code,
              "server_log_tail": [ln for ln in log if "edgeser" in ln or "error" in ln.lower()][-8:],
              "command": f"python tests/integration/pytriton_check.py --data {args.data} --out {args.out}"}
    write_result(args.out, result)
    print(json.dumps({k: result[k] for k in ("python", "started_s", "all_equal_labels", "max_abs_difference",
                                             "silence_error", "exit_status_on_sigterm")}, indent=2))


if __name__ == "__main__":
    main()
