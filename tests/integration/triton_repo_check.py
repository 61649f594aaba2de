"""The model repository that ``edgeser triton`` writes, loaded by a real Triton server (the one PyTriton ships).

Writes ``edgeser triton default --out REPO`` and starts PyTriton's ``tritonserver`` binary on it twice. First as
written: the state Triton gives every model, and what one request gets, are recorded (that server has only the
Python backend, so the graph models, ``backend: "onnxruntime"``, cannot load, and it says so). Then with each graph
model's backend line changed to ``backend: "python"`` and a stand-in ``model.py`` beside its ``model.onnx`` that
runs that same file with ONNX Runtime: every ``config.pbtxt`` as written otherwise (names, dims, max_batch_size,
dynamic batching, instance groups), and the pipeline model exactly as written, calling the graph models through
Triton's business-logic scripting. The bundled sample and three RAVDESS files go through tritonclient's HTTP client
and are compared with the runtime's prediction in this process, four of them at once too; a second of silence
records the error a client gets; SIGTERM stops the server and its exit status is recorded.

    python tests/integration/triton_repo_check.py --data ../shared/data \
        --out benchmarks/results/triton_repo.json

Run it where ``edgeser serve --triton`` runs: a venv of the system Python with ``pip install ".[cpu,pytriton]"``
(see edgeser/serving/pytriton.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pytriton_check import ask, check_files, stop, wait_ready  # this folder, first on the path of a script

STAND_IN = '''"""A stand-in for Triton's ONNX Runtime backend (tests/integration/triton_repo_check.py): the same
model.onnx, run by ONNX Runtime inside the Python backend, one request at a time."""

import json
from pathlib import Path

import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.outputs = [o["name"] for o in config["output"]]
        path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def execute(self, requests):
        responses = []
        for request in requests:
            feeds = {n: pb_utils.get_input_tensor_by_name(request, n).as_numpy() for n in self.inputs}
            values = self.session.run(self.outputs, feeds)
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(n, v) for n, v in zip(self.outputs, values)]))
        return responses
'''


def server_folder(into: Path) -> tuple[Path, dict[str, str]]:
    """PyTriton's Triton server, set up as PyTriton sets it up: its tree copied with the Python-backend stub of
    this Python in ``backends/python``, its libraries on ``LD_LIBRARY_PATH``, this venv first on ``PATH``."""
    from pytriton.utils.distribution import get_libs_path, get_root_module_path, get_stub_path

    root = into / "tritonserver"
    shutil.copytree(get_root_module_path() / "tritonserver", root,
                    ignore=shutil.ignore_patterns("python_backend_stubs"))
    shutil.copy(get_stub_path(f"{sys.version_info.major}.{sys.version_info.minor}"),
                root / "backends" / "python" / "triton_python_backend_stub")
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join(p for p in (env.get("LD_LIBRARY_PATH"), str(get_libs_path())) if p)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    return root, env


def start(root: Path, env: dict[str, str], repo: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen([str(root / "bin" / "tritonserver"), "--model-repository", str(repo),
                             "--backend-directory", str(root / "backends"), "--http-port", str(port),
                             "--grpc-port", str(port + 1), "--allow-metrics", "false", "--exit-on-error", "false",
                             "--http-address", "127.0.0.1", "--grpc-address", "127.0.0.1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def model_states(client: Any) -> dict[str, dict[str, str]]:
    """Triton's repository index: each model's state and, when it did not load, the reason."""
    return {m["name"]: {"state": m.get("state", ""), "reason": m.get("reason", "")}
            for m in client.get_model_repository_index()}


def with_stand_ins(repo: Path, graphs: list[str]) -> None:
    """Each graph model's ``backend: "onnxruntime"`` line changed to ``backend: "python"``, and the stand-in
    beside its model.onnx; nothing else in the repository changes."""
    for name in graphs:
        config = repo / name / "config.pbtxt"
        text, n = re.subn(r'^backend: "onnxruntime"$', 'backend: "python"', config.read_text(), flags=re.M)
        if n != 1:
            raise SystemExit(f"{config}: no onnxruntime backend line to swap")
        config.write_text(text)
        (repo / name / "1" / "model.py").write_text(STAND_IN)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8150, help="HTTP port (gRPC: the next one)")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data (RAVDESS files)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    import tritonclient.http as http

    from edgeser.serving.triton import write_repository

    files = check_files(args.data)
    def client() -> Any:  # one per server run, closed before SIGTERM (Triton waits for open connections)
        return http.InferenceServerClient(f"127.0.0.1:{args.port}", concurrency=4)

    with tempfile.TemporaryDirectory(prefix="edgeser-triton-") as tmp:
        root, env = server_folder(Path(tmp))
        repo = Path(tmp) / "repo"
        written = write_repository("default", repo)
        graphs = sorted(written["graphs"].values())

        server, http_client = start(root, env, repo, args.port), client()
        as_written_ready = wait_ready(http_client, server)
        as_written = model_states(http_client) if as_written_ready is not None else {}
        as_written_answer = None
        if as_written_ready is not None:
            try:  # what a client gets from the pipeline model while its graph models are unavailable
                as_written_answer = ask(http_client, files[:1], with_silence=False)[0][0]["label"]
            except Exception as e:
                as_written_answer = f"error: {str(e)[:300]}"
        http_client.close()
        as_written_exit, _ = stop(server)

        with_stand_ins(repo, graphs)
        server, http_client = start(root, env, repo, args.port), client()
        started = wait_ready(http_client, server)
        states = model_states(http_client) if started is not None else {}
        answers: list[Any] = []
        together: list[Any] = []
        error = None
        if started is not None and all(states.get(g, {}).get("state") == "READY" for g in graphs):
            answers, error = ask(http_client, files)
            together, _ = ask(http_client, files, at_once=True, with_silence=False)  # four requests in flight
            stats = {s["name"]: {"requests": s["inference_count"], "executions": s["execution_count"]}
                     for s in http_client.get_inference_statistics()["model_stats"]}
        else:
            stats = {}
        http_client.close()
        code, log = stop(server)

    every = answers + together
    result = {"protocol": (__doc__ or "").split("\n\n")[1].replace("\n", " "),
              "python": platform.python_version(), "executable": sys.executable,
              "pytriton": __import__("importlib.metadata").metadata.version("nvidia-pytriton"),
              "layout": written["models"], "graphs": graphs,
              "as_written": {"ready_s": None if as_written_ready is None else round(as_written_ready, 1),
                             "models": as_written, "one_request": as_written_answer,
                             "exit_status_on_sigterm": as_written_exit},
              "with_stand_ins": {"ready_s": None if started is None else round(started, 1), "models": states},
              "answers": answers, "answers_four_at_once": together,
              "all_equal_labels": bool(answers) and len(together) == len(answers)
              and all(a["label"] == a["runtime_label"] for a in every),
              "max_abs_difference": max((a["max_abs_difference"] for a in every), default=None),
              "silence_error": error, "statistics": stats, "exit_status_on_sigterm": code,
              "server_log_tail": [ln[:400] for ln in log if " E" in ln[:2] or "error" in ln.lower()][-8:],
              "command": f"python tests/integration/triton_repo_check.py --data {args.data} --out {args.out}"}
    from edgeser_benchmarks.provenance import write_result

    write_result(args.out, result)
    print(json.dumps({"as_written": {k: v["state"] for k, v in as_written.items()},
                      "with_stand_ins": {k: v["state"] for k, v in states.items()},
                      **{k: result[k] for k in ("all_equal_labels", "max_abs_difference", "silence_error",
                                                "exit_status_on_sigterm")}}, indent=2))


if __name__ == "__main__":
    main()
