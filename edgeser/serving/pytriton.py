"""``edgeser serve --triton``: the recognizer served by a real Triton Inference Server, through NVIDIA's PyTriton
(``pip install nvidia-pytriton``; it ships a Triton server and binds Python callables to it).

One model, ``edgeser``: input ``AUDIO`` (float32 samples; a leading batch axis of 1 is accepted), optional
``SAMPLE_RATE`` (int32, 16000 by default) and ``TEXT`` (bytes, a transcript); outputs ``PROBABILITIES`` (float32,
in the ``labels`` order that :func:`model_labels` gives), ``LABEL`` and ``RESULT`` (the prediction as JSON). It
listens on 127.0.0.1 unless told otherwise. Any HTTP or gRPC Triton client works (``tritonclient``).

Where it runs: PyTriton's Python-backend stub loads the system's ``libpython``, so the venv must be made from that
same Python (on Debian 12 here: ``/usr/bin/python3`` 3.11.2). From a pyenv build the stub fails to start (3.11.7:
``'_thread.RLock' object has no attribute '_recursion_count'``, its stdlib against the system's libpython; 3.12.1:
``libpython3.12.so.1.0`` missing). PyTriton 0.7.0 declares ``numpy<2``, so that venv has numpy 1.26.
``python tests/integration/pytriton_check.py`` records a run.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeser._optional import require
from edgeser.errors import EdgeserError
from edgeser.serving.triton import predict_request, prediction_outputs

log = logging.getLogger(__name__)

MODEL = "edgeser"
INSTALL = ('pip install nvidia-pytriton (in a venv made from the system Python, whose libpython its Triton stub '
           'loads; see edgeser/serving/pytriton.py)')


def infer_function(recognizer: Any) -> Any:
    """The callable PyTriton binds: a list of requests in, one dict of outputs per request out."""
    labels = list(recognizer.bundle.manifest.labels)

    def infer(requests: Sequence[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        out = []
        for request in requests:
            try:
                given = [request[k] if k in request else None for k in ("AUDIO", "SAMPLE_RATE", "TEXT")]
                p = predict_request(recognizer, *given)  # PyTriton's Request is a Mapping without .get
            except EdgeserError as e:
                raise ValueError(str(e)) from e  # PyTriton answers the request with this message
            out.append(prediction_outputs(p, labels))
        return out

    return infer


def serve_triton(recognizer: Any, host: str = "127.0.0.1", http_port: int = 8000, grpc_port: int = 8001,
                 ready: threading.Event | None = None) -> None:
    """Serve until interrupted (SIGINT / SIGTERM stop PyTriton's server). ``ready`` is set once it serves.

    Triton's server has no authentication, origin check or connection limit, so ``edgeser serve --triton`` refuses
    the WebSocket service's options for them rather than ignore them, and its Prometheus metrics port is off (it
    would be one more open port): keep it on ``host`` 127.0.0.1, or put an authenticating proxy in front."""
    require("pytriton", "pytriton", "serving on Triton", install=INSTALL)
    from pytriton.model_config import ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    recognizer.warm_up()
    config = TritonConfig(http_address=host, http_port=http_port, grpc_address=host, grpc_port=grpc_port,
                          allow_metrics=False)
    with Triton(config=config) as triton:
        triton.bind(model_name=MODEL, infer_func=infer_function(recognizer),
                    inputs=[Tensor(name="AUDIO", dtype=np.float32, shape=(-1,)),
                            Tensor(name="SAMPLE_RATE", dtype=np.int32, shape=(1,), optional=True),
                            Tensor(name="TEXT", dtype=bytes, shape=(1,), optional=True)],
                    outputs=[Tensor(name="PROBABILITIES", dtype=np.float32, shape=(-1,)),
                             Tensor(name="LABEL", dtype=bytes, shape=(1,)),
                             Tensor(name="RESULT", dtype=bytes, shape=(1,))],
                    config=ModelConfig(batching=False), strict=False)
        triton.run()
        if ready is not None:
            ready.set()
        log.warning("serving model %r on Triton: http %s:%d, grpc %s:%d", MODEL, host, http_port, host, grpc_port)
        restore = None
        if threading.current_thread() is threading.main_thread():  # SIGTERM stops it as Ctrl-C does
            restore = signal.signal(signal.SIGTERM, _interrupt)
        try:
            triton.serve()
        except KeyboardInterrupt:
            pass
        finally:
            if restore is not None:
                signal.signal(signal.SIGTERM, restore)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt
