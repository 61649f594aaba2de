"""Write the committed fixture bundles (tests/fixtures) from the tiny random checkpoints of conftest.py.

    python tests/make_fixtures.py

Needs the torch side (``edgeser[export]``). The bundles let the runtime, CLI and default-model tests run in a
venv without torch; ``tests/test_export.py`` exports them again and checks that the committed ones still match
(run this when it says they do not).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import FIXTURES, _save_tiny_speech, _save_tiny_text


def make(out: Path) -> dict[str, Path]:
    """The three fixture bundles under ``out``: tiny (speech, all layers + text), parts (speech + a random fusion
    head), text (the text encoder alone)."""
    import torch

    from edgeser.model.bundle import Bundle
    from edgeser_export.model import FusionConfig, FusionModel
    from edgeser_export.pipeline import add_fusion, export_bundle
    from edgeser_export.sources import load_speech, load_text

    with tempfile.TemporaryDirectory(prefix="edgeser-fixtures-") as tmp:
        speech_dir = _save_tiny_speech(Path(tmp) / "tiny-w2v2-layer", layer_norm=True)
        text_dir = _save_tiny_text(Path(tmp) / "tiny-bert")
        export_bundle(out / "tiny", speech=load_speech(speech_dir), text=load_text(text_dir), exporter="torchscript",
                      layers="all")
        export_bundle(Path(tmp) / "speech", speech=load_speech(speech_dir), exporter="torchscript")
        export_bundle(out / "text", text=load_text(text_dir), exporter="torchscript")
        speech_dim = Bundle.load(Path(tmp) / "speech").manifest.speech.hidden_size  # type: ignore[union-attr]
        text_dim = Bundle.load(out / "text").manifest.text.hidden_size  # type: ignore[union-attr]
        torch.manual_seed(3)
        model = FusionModel(FusionConfig(speech_dim=speech_dim, text_dim=text_dim, dim=16, heads=2))
        add_fusion(Path(tmp) / "speech", model, out / "parts", layer=0, provenance={"dataset": "none (random)"},
                   exporter="torchscript")
    return {name: out / name for name in ("tiny", "parts", "text")}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="edgeser-fixtures-") as tmp:
        made = make(Path(tmp))
        shutil.rmtree(FIXTURES, ignore_errors=True)
        FIXTURES.mkdir(parents=True)
        for name, path in made.items():
            shutil.copytree(path, FIXTURES / name)
    size = sum(f.stat().st_size for f in FIXTURES.rglob("*") if f.is_file())
    print(f"wrote {FIXTURES} ({size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
