"""Run an exported emotion head (``fusion.onnx``): speech-only (pooled frame statistics, the default) or fused
(early + late fusion of pooled speech levels and text embeddings, the paper's)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edgeser.backends import Backend
from edgeser.errors import BundleError, InputError
from edgeser.model.specs import GraphSpec


class EmotionHead:
    """The emotion head's graph: per speech level ``(features, mask)`` (and text ``(tokens, mask)`` where the head
    reads text) → log-probabilities."""

    def __init__(self, backend: Backend, spec: GraphSpec) -> None:
        self.spec = spec
        self._backend = backend
        if backend.input_names != spec.input_names:
            raise BundleError(f"the emotion head's graph inputs {list(backend.input_names)} differ from the declared "
                              f"{list(spec.input_names)}; re-export the bundle")
        self.levels = tuple(n for n in spec.input_names if not n.endswith("_mask") and n != "text")
        self.uses_text = "text" in spec.input_names

    def __call__(self, speech: Mapping[str, tuple[np.ndarray, np.ndarray]],
                 text: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Log-probabilities per output (``scores`` and the branch scores), each ``(batch, classes)``.

        Raises:
            ValueError: A level or the text is missing, or a mask row has no true position.
        """
        return self._backend.run(self.feeds(speech, text))

    def feeds(self, speech: Mapping[str, tuple[np.ndarray, np.ndarray]],
              text: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """The graph's named inputs for these features (checked against the spec); see :meth:`__call__`."""
        parts = {level: speech[level] for level in self.levels if level in speech}
        missing = [lv for lv in self.levels if lv not in parts]
        if missing:
            raise InputError(f"the emotion head needs speech levels {list(self.levels)}; missing {missing}")
        if self.uses_text:
            if text is None:
                raise InputError("this emotion head needs text embeddings (the transcript's tokens)")
            parts["text"] = text
        feeds: dict[str, np.ndarray] = {}
        for name, (features, mask) in parts.items():
            if not mask.any(axis=1).all():
                raise InputError(f"{name}: every utterance needs at least one real position (mask row all false)")
            feeds[name] = np.ascontiguousarray(features, dtype=np.float32)
            feeds[f"{name}_mask"] = np.ascontiguousarray(mask, dtype=bool)
        self.spec.check_feeds(feeds)
        return feeds
