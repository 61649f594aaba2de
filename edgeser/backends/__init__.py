"""Inference backends: each runs one graph, ``run(feeds) -> {output_name: array}``."""

from edgeser.backends.base import Backend
from edgeser.backends.ort import OrtBackend

__all__ = ["Backend", "OrtBackend"]
