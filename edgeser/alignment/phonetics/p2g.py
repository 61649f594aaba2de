"""Phones → English words, for the text branch when no transcript is given and the CTC head is phonemic.

A phonemic CTC head decodes IPA (``kɪdz ɑɹ ...``), which a text encoder cannot read. ``hama``'s P2G model
(Apache-2.0, in ``edgeser[align]``) spells it as words (``kids are ...``); the text branch then sees words,
as it did in training. Decoding errors carry over: give the transcript where you have it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edgeser._optional import require


class PhonesToWords:
    """``hama.p2g.P2GModel`` over words given as phone lists."""

    def __init__(self) -> None:
        require("hama", "align", "spelling decoded phones as words for the text branch")
        from hama.p2g import P2GModel  # type: ignore[import-untyped]

        self._model: Any = P2GModel()

    def __call__(self, words: Sequence[Sequence[str]]) -> str:
        """The text of ``words`` (each a sequence of IPA phones); empty input gives an empty string."""
        phones = " | ".join(" ".join(w) for w in words if w)
        return str(self._model(phones).text).strip() if phones else ""
