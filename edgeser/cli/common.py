"""What every ``edgeser`` command shares, the runtime's (:mod:`edgeser.cli`) and the torch side's: the consoles and
how a command reports (``wrote``, one-line errors, a progress bar), and the options several commands take the same
way (``--backend``/``--threads``, ``--trust``, ``--min-confidence``, ``--ray``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.text import Text

from edgeser.errors import EdgeserError
from edgeser.options import BACKENDS, RuntimeOptions

out = Console(markup=False, highlight=False)
err = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)
"""No markup: paths, messages and pip extras (``edgeser[align]``) print as they are, and messages unwrapped; colour
goes through :func:`styled`."""


def styled(style: str, head: str, rest: str = "") -> Text:
    """``head`` in ``style`` (``"green"``, ``"yellow"``, ``"red"``), then ``rest`` as plain text."""
    return Text.assemble((head, style), rest)


def wrote(what: str) -> None:
    """``wrote <what>`` on stderr, the word in green: what a command says of the file it made."""
    err.print(styled("green", "wrote", f" {what}"))


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn edgeser's own errors into a one-line message and exit status 1 (no traceback)."""
    try:
        yield
    except EdgeserError as e:
        raise click.ClickException(str(e)) from e


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Any]:
    """A progress bar on stderr (gone when done); yields ``progress(done, total)``, the callback the long jobs
    (calibration sets, batch jobs) call."""
    from rich.progress import Progress

    with Progress(console=err, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done, total: bar.update(task, completed=done, total=total)


KEY_FILE_BYTES = 4096
"""A public key file is one line of about 60 characters; --trust reads no more than this."""


def trusted_options(keys: tuple[Path, ...], min_confidence: float | None = None, backend: str = "cpu",
             threads: int = 0) -> RuntimeOptions:
    """RuntimeOptions for ``--backend`` and ``--threads`` (:meth:`RuntimeOptions.named`) that accept only bundles
    signed by one of the public key files ``keys`` (none: any), and abstain below ``min_confidence``."""
    texts = []
    for key in keys:
        try:
            if not key.is_file():
                raise OSError("not a regular file")
            with open(key, "rb") as f:
                raw = f.read(KEY_FILE_BYTES + 1)  # never more: --trust /dev/zero must not read for ever
            if len(raw) > KEY_FILE_BYTES:
                raise OSError(f"over {KEY_FILE_BYTES} bytes, not a key file")
            texts.append(raw.decode("utf-8").strip())
        except (OSError, UnicodeDecodeError) as e:
            raise click.UsageError(f"--trust {key}: cannot read it ({e}); pass a .pub file from `edgeser keygen`"
                                   ) from e
        if "PRIVATE KEY" in texts[-1]:
            raise click.UsageError(f"--trust {key}: that is a private key; pass the public one (the .pub file "
                                   "`edgeser keygen` wrote beside it), and keep the private key secret")
    if min_confidence is not None and not 0 < min_confidence <= 1:
        raise click.UsageError(f"--min-confidence must be in (0, 1], got {min_confidence}")
    return RuntimeOptions.named(backend, threads, trusted_keys=tuple(texts), min_confidence=min_confidence)


MIN_CONFIDENCE = click.option(
    "--min-confidence", type=float, default=None, metavar="P",
    help="Say 'uncertain' (with the probabilities) when the top calibrated probability is below P; the model card "
         "gives the accuracy at each coverage.")


F = TypeVar("F", bound=Callable[..., Any])


def runtime_options(command: F) -> F:
    """``--backend`` and ``--threads``, the same on every command that runs a bundle."""
    for option in reversed([
            click.option("--backend", type=click.Choice(list(BACKENDS)), default="cpu", show_default=True,
                         help="ONNX Runtime on the CPU, its CUDA or TensorRT provider (onnxruntime-gpu), or the "
                              "bundle's TensorRT engines from `edgeser engines` (only cpu has been run here)."),
            click.option("--threads", type=click.IntRange(0), default=0, show_default=True,
                         help="ONNX Runtime threads per graph (0 = all cores).")]):
        command = option(command)
    return command


TRUST = click.option("--trust", "trust", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
                     help="Accept only a bundle signed by this public key (.pub from `edgeser keygen`); repeatable.")


def ray_options(workers_help: str) -> Callable[[F], F]:
    """``--ray``, ``--ray-address`` and ``--workers``, as ``batch``, ``bench``, ``evaluate``, ``ablate`` and ``train``
    take them; :func:`ray_target` turns them into the ``ray_address`` / ``workers`` those functions take."""
    def wrap(command: F) -> F:
        for option in reversed([
                click.option("--ray", "use_ray", is_flag=True, help="Run on Ray: a local instance, or the one "
                                                                    "--ray-address names (needs edgeser[ray])."),
                click.option("--ray-address", default=None, help="A Ray cluster: auto (the `ray start --head` on "
                                                                 "this machine), host:6379, or ray://host:10001."),
                click.option("--workers", type=int, default=None, help=workers_help)]):
            command = option(command)
        return command
    return wrap


def ray_target(use_ray: bool, ray_address: str | None, workers: int | None) -> tuple[str | None, int | None]:
    """``(ray_address, workers)``: ``(None, None)`` without --ray; --ray alone is a local instance."""
    if (ray_address or workers) and not use_ray:
        raise click.UsageError("--ray-address and --workers are for --ray")
    if workers is not None and workers < 1:
        raise click.UsageError(f"--workers must be at least 1, got {workers}")
    return ((ray_address or "local"), workers) if use_ray else (None, None)
