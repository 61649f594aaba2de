"""The interface every backend implements."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np


class Backend(Protocol):
    """One loaded graph, ready to run."""

    @property
    def input_names(self) -> tuple[str, ...]: ...

    @property
    def output_names(self) -> tuple[str, ...]: ...

    @property
    def metadata(self) -> dict[str, str]:
        """Key/value metadata stored in the graph (used to cross-check the bundle)."""
        ...

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class NamedGraph:
    """:class:`Backend`'s ``input_names`` and ``output_names``, from the ``_inputs`` and ``_outputs`` a backend sets
    when it loads its graph."""

    _inputs: tuple[str, ...]
    _outputs: tuple[str, ...]

    @property
    def input_names(self) -> tuple[str, ...]:
        return self._inputs

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._outputs
