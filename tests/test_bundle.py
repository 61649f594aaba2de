"""Bundle loading refuses missing, tampered and inconsistent bundles; writing is atomic."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgeser import EmotionRecognizer
from edgeser.errors import BundleError
from edgeser.model.bundle import Bundle, Manifest, read_manifest
from edgeser.model.writer import write_bundle


@pytest.fixture
def bundle(tiny_bundle: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    return copy


def edit_manifest(bundle: Path, change) -> None:  # type: ignore[no-untyped-def]
    data = json.loads((bundle / "bundle.json").read_text())
    change(data)
    (bundle / "bundle.json").write_text(json.dumps(data))


def test_loads_and_describes_itself(bundle: Path) -> None:
    b = Bundle.load(bundle)
    m = b.manifest
    assert set(m.files) == {"speech.onnx", "text.onnx", "tokenizer.json"}
    assert m.speech is not None and m.text is not None
    assert m.speech.ctc.tokens[m.speech.ctc.blank_id] == "<pad>" and m.speech.ctc.word_delimiter == "|"
    assert m.speech.frames.hop_samples == 320 and m.speech.frames.receptive_field == 400
    assert m.speech.exposed_layers == (0, 1, 2)
    assert m.labels == ("neutral", "happy", "angry", "sad")
    assert Manifest.from_dict(m.to_dict()) == m


def test_tampered_file_names_the_file(bundle: Path) -> None:
    data = bytearray((bundle / "speech.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle / "speech.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"speech\.onnx: sha256 is .* re-export"):
        Bundle.load(bundle)
    Bundle.load(bundle, verify_hashes=False)  # same size: only the hash can tell


def test_truncated_file(bundle: Path) -> None:
    (bundle / "tokenizer.json").write_text("{}")
    with pytest.raises(BundleError, match=r"tokenizer\.json: size is 2 bytes"):
        Bundle.load(bundle, verify_hashes=False)


def test_missing_file(bundle: Path) -> None:
    (bundle / "text.onnx").unlink()
    with pytest.raises(BundleError, match=r"text\.onnx: missing"):
        Bundle.load(bundle)


def test_missing_manifest_and_folder(bundle: Path, tmp_path: Path) -> None:
    (bundle / "bundle.json").unlink()
    with pytest.raises(BundleError, match=r"bundle\.json: missing"):
        Bundle.load(bundle)
    with pytest.raises(BundleError, match="no bundle folder"):
        Bundle.load(tmp_path / "nowhere")


def test_corrupt_manifest(bundle: Path) -> None:
    (bundle / "bundle.json").write_text('{"format": "edgeser-bundle", ')
    with pytest.raises(BundleError, match="not valid JSON"):
        read_manifest(bundle)


@pytest.mark.parametrize("version,hint", [(2, "upgrade edgeser"), (0, "re-export")])
def test_schema_version_is_checked(bundle: Path, version: int, hint: str) -> None:
    edit_manifest(bundle, lambda d: d.update(schema_version=version))
    with pytest.raises(BundleError, match=f"schema version {version}.*{hint}"):
        Bundle.load(bundle)


def test_incomplete_manifest_names_the_problem(bundle: Path) -> None:
    edit_manifest(bundle, lambda d: d["speech"].pop("frames"))
    with pytest.raises(BundleError, match=r"missing or malformed entry.*frames"):
        Bundle.load(bundle)


@pytest.mark.parametrize("name", ["../outside.onnx", "/etc/passwd", "a/../../b"])
def test_file_names_cannot_leave_the_bundle(bundle: Path, name: str) -> None:
    edit_manifest(bundle, lambda d: d["files"].update({name: {"sha256": "0" * 64, "bytes": 1}}))
    with pytest.raises(BundleError, match="points outside the bundle"):
        Bundle.load(bundle)


def test_not_a_bundle(bundle: Path) -> None:
    edit_manifest(bundle, lambda d: d.update(format="something-else"))
    with pytest.raises(BundleError, match="not an edgeser bundle"):
        Bundle.load(bundle)


def test_manifest_that_disagrees_with_graph_metadata(bundle: Path) -> None:
    edit_manifest(bundle, lambda d: d["speech"]["ctc"].update(blank_id=4))
    with pytest.raises(BundleError, match=r"edgeser\.blank_id='0' but bundle\.json says '4'"):
        EmotionRecognizer.from_bundle(bundle)


def test_swapped_graph_is_caught_by_metadata(bundle: Path) -> None:
    """A text graph renamed to speech.onnx with its hash updated still fails the cross-check."""
    shutil.copy(bundle / "text.onnx", bundle / "speech.onnx")

    def rehash(d: dict) -> None:  # type: ignore[type-arg]
        from edgeser.model.bundle import sha256_file

        d["files"]["speech.onnx"] = {"sha256": sha256_file(bundle / "speech.onnx"),
                                     "bytes": (bundle / "speech.onnx").stat().st_size}
    edit_manifest(bundle, rehash)
    with pytest.raises(BundleError, match="graph has inputs"):
        EmotionRecognizer.from_bundle(bundle)


def test_write_is_atomic_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "new"
    with pytest.raises(RuntimeError, match="boom"), write_bundle(out) as w:
        w.path("speech.onnx").write_bytes(b"partial")
        raise RuntimeError("boom")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no staging folder left behind


def test_existing_bundle_needs_overwrite_and_survives_a_failed_overwrite(bundle: Path) -> None:
    before = (bundle / "bundle.json").read_text()
    with pytest.raises(BundleError, match=r"already exists.*--overwrite"), write_bundle(bundle):
        pass
    with pytest.raises(RuntimeError), write_bundle(bundle, overwrite=True) as w:
        w.path("x").write_text("half")
        raise RuntimeError("interrupted")
    assert (bundle / "bundle.json").read_text() == before
    assert sorted(p.name for p in bundle.parent.iterdir()) == ["bundle"]


def test_overwrite_replaces(bundle: Path) -> None:
    m = Bundle.load(bundle).manifest
    with write_bundle(bundle, overwrite=True) as w:
        w.path("only.txt").write_text("new")
        w.finish(Manifest(edgeser_version="0", created="now", labels=("a", "b"), files={}, speech=None, text=None))
    assert set(Bundle.load(bundle).manifest.files) == {"only.txt"} != set(m.files)


def test_finish_is_required(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="without calling"), write_bundle(tmp_path / "b") as w:
        w.path("f").write_text("x")
    assert not (tmp_path / "b").exists()


def test_written_bundles_are_readable_like_any_folder(tmp_path: Path) -> None:
    import os
    import stat

    from edgeser.model.writer import write_bundle

    with write_bundle(tmp_path / "b") as writer:
        writer.path("x.txt").write_text("x")
        writer.finish(Manifest(edgeser_version="0", created="now", labels=("a", "b"), files={}, speech=None, text=None))
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o777 & ~mask
