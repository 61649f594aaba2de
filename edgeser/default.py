"""The default model: ``default`` names it wherever a bundle is accepted.

The package ships it whole in ``edgeser/models/default``: the speech encoder, the head (and the head for enrolled
speakers), ``bundle.json`` and the model card beside it (``edgeser/models/MODEL_CARD.md``). It reads no text, so
nothing is built on first use. A device that keeps its bundles elsewhere (a Jetson image, a read-only install) can
point ``EDGESER_DEFAULT_BUNDLE`` at a copy, or at another bundle to be called ``default``.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgeser.errors import BundleError
from edgeser.model.bundle import MANIFEST

NAME = "default"
SHIPPED = Path(__file__).parent / "models" / "default"
"""The shipped bundle: ``bundle.json``, ``speech.onnx``, ``fusion.onnx``, ``fusion_speaker.onnx``."""
MODEL_CARD = Path(__file__).parent / "models" / "MODEL_CARD.md"


def resolve(bundle: str | os.PathLike[str]) -> Path:
    """``"default"`` → the default bundle's folder (``$EDGESER_DEFAULT_BUNDLE``, else the shipped one); anything else
    is a path.

    Raises:
        BundleError: ``EDGESER_DEFAULT_BUNDLE`` names a folder without a bundle, or this install lacks the shipped one.
    """
    if str(bundle) != NAME:
        return Path(bundle)
    override = os.environ.get("EDGESER_DEFAULT_BUNDLE")
    if override:
        path = Path(override).expanduser()
        if not (path / MANIFEST).is_file():
            raise BundleError(f"{path}: EDGESER_DEFAULT_BUNDLE points here but there is no bundle; copy a bundle "
                              "here, or unset the variable to use the shipped default")
        return path
    if not (SHIPPED / MANIFEST).is_file():
        raise BundleError(f"{SHIPPED / MANIFEST}: missing; this edgeser was installed without its default model "
                          "(reinstall it from the repository, or pass --bundle)")
    return SHIPPED


__all__ = ["MODEL_CARD", "NAME", "SHIPPED", "resolve"]
