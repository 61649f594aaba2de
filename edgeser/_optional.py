"""Lazy imports of optional dependencies, with the command that installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from edgeser.errors import BackendUnavailableError


def require(module: str, extra: str, purpose: str, install: str | None = None) -> ModuleType:
    """Import ``module`` or raise with the pip command that provides it.

    Args:
        module: Importable module name, e.g. ``"torch"``.
        extra: The edgeser extra that installs it, e.g. ``"export"``.
        purpose: What needs it, for the message, e.g. ``"edgeser export"``.
        install: The install command, where it is not ``pip install "edgeser[EXTRA]"``.

    Raises:
        BackendUnavailableError: The module is not installed (or fails to import).
    """
    command = install or f'pip install "edgeser[{extra}]"'
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise BackendUnavailableError(
            f"{purpose} needs the Python package '{module}', which is not importable here ({e}). "
            f"Install it with: {command}"
        ) from e
    except OSError as e:  # installed, but a system library it loads is missing (sounddevice without PortAudio)
        hint = SYSTEM_LIBRARIES.get(module, "install the system library it names")
        raise BackendUnavailableError(f"{purpose}: the package '{module}' is installed but cannot load ({e}); {hint}"
                                      ) from e


SYSTEM_LIBRARIES = {"sounddevice": "install PortAudio (Debian/Ubuntu and Jetson: sudo apt install libportaudio2), "
                                   "or stream from another process with `edgeser listen --stdin`"}


ORT_INSTALL = ('pip install "edgeser[cpu]" (or "edgeser[gpu]" for CUDA; on Jetson, NVIDIA\'s onnxruntime-gpu wheel '
               "for your JetPack)")


def onnxruntime() -> ModuleType:
    """ONNX Runtime, from whichever build is installed (onnxruntime or onnxruntime-gpu: both import as
    ``onnxruntime``, and edgeser depends on neither directly, so that they never conflict)."""
    return require("onnxruntime", "cpu", "running the graphs", install=ORT_INSTALL)
