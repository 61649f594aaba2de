"""Bundles that say who made them: the digest, signatures, links, sizes, the manifest cross-checked against the
graphs, and a fuzz of the manifest (on a copy of the shipped default; no torch)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeser import EmotionRecognizer, RuntimeOptions
from edgeser.errors import BundleError, EdgeserError
from edgeser.model.bundle import MAX_MANIFEST_BYTES, Bundle, manifest_digest
from tests.conftest import SAMPLE
from tests.fuzzing import fuzz_settings, record

SHIPPED = Path(__file__).resolve().parents[1] / "edgeser" / "models" / "default"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    out = tmp_path / "default"
    shutil.copytree(SHIPPED, out)
    return out


def edit(bundle: Path, change: Any) -> None:
    data = json.loads((bundle / "bundle.json").read_text())
    change(data)
    (bundle / "bundle.json").write_text(json.dumps(data))


def test_the_digest_names_the_bundle_and_can_be_pinned(bundle: Path) -> None:
    digest = manifest_digest(bundle)
    assert Bundle.load(bundle).digest == digest and digest.startswith("sha256:")
    EmotionRecognizer.from_bundle(bundle, RuntimeOptions(bundle_digest=digest))
    edit(bundle, lambda d: d.update(created="yesterday"))  # any change to bundle.json changes the digest
    with pytest.raises(BundleError, match="not the sha256:"):
        EmotionRecognizer.from_bundle(bundle, RuntimeOptions(bundle_digest=digest))


def test_signed_bundles_and_trusted_keys(bundle: Path, tmp_path: Path) -> None:
    """Sign with one key: trusted by that key, refused by another's; a swapped head (new fusion.onnx with a
    matching sha256 in bundle.json) breaks the signature; an unsigned bundle is refused when keys are trusted."""
    pytest.importorskip("cryptography")
    from edgeser.model.signing import generate_key, key_id, sign_bundle

    private, public = generate_key(tmp_path / "keys" / "release")
    _, other = generate_key(tmp_path / "keys" / "other")
    assert oct(private.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(BundleError, match="already exists"):
        generate_key(private)
    trusted = RuntimeOptions(trusted_keys=(public.read_text(),))
    with pytest.raises(BundleError, match="unsigned"):
        EmotionRecognizer.from_bundle(bundle, trusted)
    signer = sign_bundle(bundle, private)
    assert signer == key_id(public.read_text())
    assert EmotionRecognizer.from_bundle(bundle, trusted).bundle.signer == signer
    with pytest.raises(BundleError, match="not among the trusted keys"):
        EmotionRecognizer.from_bundle(bundle, RuntimeOptions(trusted_keys=(other.read_text(),)))
    # the swap: another fusion graph, and bundle.json rewritten with its hash, as an attacker would
    import hashlib

    shutil.copy(bundle / "fusion_speaker.onnx", bundle / "fusion.onnx")
    data = (bundle / "fusion.onnx").read_bytes()
    edit(bundle, lambda d: d["files"]["fusion.onnx"].update(sha256=hashlib.sha256(data).hexdigest()))
    for options in (trusted, RuntimeOptions()):  # a signature that no longer matches is refused either way
        with pytest.raises(BundleError, match=r"does not match bundle\.json"):
            EmotionRecognizer.from_bundle(bundle, options)


def test_links_out_of_the_bundle_and_huge_manifests_are_refused(bundle: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.onnx"
    shutil.move(bundle / "fusion.onnx", outside)
    (bundle / "fusion.onnx").symlink_to(outside)
    with pytest.raises(BundleError, match="is a link"):
        Bundle.load(bundle)
    (bundle / "fusion.onnx").unlink()
    shutil.move(outside, bundle / "fusion.onnx")
    (bundle / "bundle.json").write_text(" " * (MAX_MANIFEST_BYTES + 1))
    with pytest.raises(BundleError, match="more than a manifest can be"):
        Bundle.load(bundle)
    (bundle / "bundle.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.load(bundle)


@pytest.mark.parametrize("change,message", [
    (lambda d: d.update(labels=["sad"] * 4), "repeated names"),
    (lambda d: d.update(labels=[0, 1, 2, 3]), "list of non-empty strings"),
    (lambda d: d.update(labels=["neutral", "happy", "angry"]), "scores 4 classes but bundle.json has 3 labels"),
    (lambda d: d.update(files=None), "'files' must map"),
    (lambda d: d["files"].update({f"x{i}.bin": {"sha256": "0", "bytes": 1} for i in range(300)}), "lists 30\\d files"),
    (lambda d: d["files"]["fusion.onnx"].update(bytes=1 << 40), "from 0 to 8589934592"),
    (lambda d: d["speech"]["frames"].update(hop_samples=float("inf")), "OverflowError"),  # found by the fuzz in CI
    (lambda d: d["speech"]["frames"]["conv_padding"][1].__setitem__(1, 9.223372036854776e18), "at most"),  # CI fuzz
    (lambda d: d["speech"]["frames"]["conv_padding"].__setitem__(2, ""), "pairs"),  # CI fuzz: an IndexError
    (lambda d: d["speech"].update(normalize_input=True), "normalize_input"),
    (lambda d: d["speech"].update(exposed_layers=[7]), "at most num_layers"),
    (lambda d: d["speech"]["spec"]["inputs"][0].update(dtype="float16"), "type tensor\\(float\\)"),
    (lambda d: d["speech"]["spec"]["inputs"][0].update(dims=["batch"]), "declares 1 "),
    (lambda d: d["speech"]["spec"]["inputs"][0].update(dims=["batch", 16000]), "shape"),
    (lambda d: d["fusion"]["spec"]["inputs"][0].update(dims=["batch", "frames", 777]), "shape"),
    (lambda d: d["fusion"].update(levels=[{"a": 1}]), "list of non-empty strings"),
    (lambda d: d["fusion"].update(levels=["frame", "frame"]), "repeated names"),
    (lambda d: d["fusion"].update(layer=1), "exposes 1 layer"),  # CI fuzz: an IndexError in predict
    (lambda d: d["speaker_fusion"].update(layer=3), "exposes 1 layer"),
])
def test_manifest_edits_are_caught_at_load(bundle: Path, change: Any, message: str) -> None:
    """Each of these was accepted, or failed later with a traceback ("zip() argument 2 is longer ...")."""
    edit(bundle, change)
    with pytest.raises(BundleError, match=message):
        EmotionRecognizer.from_bundle(bundle, RuntimeOptions(verify_hashes=False))


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=True),
                   st.text(max_size=8), st.lists(st.integers(-3, 3), max_size=4), st.just({"a": 1}),
                   st.just(["sad"] * 4), st.just("float16"), st.just([[[[[]]]]]))


def _paths(d: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(d, dict):
        for k, v in d.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(d, list):
        for i, v in enumerate(d[:6]):
            out += _paths(v, (*prefix, i))
    return out


BASE = json.loads((SHIPPED / "bundle.json").read_text())
PATHS = [p for p in _paths(BASE) if "provenance" not in p]


@fuzz_settings(60)
@given(edits=st.lists(st.tuples(st.sampled_from(PATHS), st.one_of(st.just("delete"), VALUES)), min_size=1,
                      max_size=3))
def test_fuzzed_manifests_load_and_predict_or_fail_clearly(bundle: Path, edits: list[tuple[Any, Any]]) -> None:
    """Any value put anywhere in bundle.json (or a key deleted): loading and predicting either work and give
    finite probabilities over distinct labels, or raise an EdgeserError; never another exception."""
    data = copy.deepcopy(BASE)
    for path, value in edits:
        node = data
        try:
            for key in path[:-1]:
                node = node[key]
            if value == "delete" and isinstance(node, dict):
                node.pop(path[-1], None)
            elif isinstance(node, (dict, list)):
                node[path[-1]] = copy.deepcopy(value)  # never the same object twice: no cycles
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced this path
    (bundle / "bundle.json").write_text(json.dumps(data))
    try:
        rec = EmotionRecognizer.from_bundle(bundle, RuntimeOptions(verify_hashes=False))
        result = rec.predict(SAMPLE)
    except EdgeserError as e:
        record(f"refused: {type(e).__name__}")
        return
    record("ok")
    assert len(set(result.probabilities)) == len(result.probabilities) >= 2
    assert all(0.0 <= p <= 1.0 for p in result.probabilities.values())


def test_keygen_sign_inspect_and_trust_on_the_command_line(bundle: Path, tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    from click.testing import CliRunner

    from edgeser.cli import main

    def run(*args: object) -> tuple[int, str]:
        result = CliRunner().invoke(main, [str(a) for a in args])
        return result.exit_code, result.output

    assert run("keygen", "--out", tmp_path / "k")[0] == 0
    code, out = run("predict", SAMPLE, "--bundle", bundle, "--trust", tmp_path / "k.pub")
    assert code == 1 and "unsigned" in out
    code, out = run("sign", bundle, "--key", tmp_path / "k")
    assert code == 0 and "signed" in out
    code, out = run("inspect", bundle)
    assert code == 0 and "valid, by key" in out and manifest_digest(bundle) in out.replace("\n", "")
    code, out = run("predict", SAMPLE, "--bundle", bundle, "--trust", tmp_path / "k.pub", "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["label"]
    edit(bundle, lambda d: d.update(created="later"))
    code, out = run("inspect", bundle)
    assert code == 1 and "does not match bundle.json" in out


def test_a_killed_writes_staging_folder_is_removed_at_the_next_write(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    from edgeser.model.writer import OWNER, write_bundle

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / ".b.staging-abc"
    stale.mkdir()
    (stale / OWNER).write_text(f"{gone.stdout.strip()} {socket.gethostname()}\n")
    (stale / "speech.onnx").write_bytes(b"half written")
    alive = tmp_path / ".b.staging-live"
    alive.mkdir()
    import os

    (alive / OWNER).write_text(f"{os.getpid()} {socket.gethostname()}\n")  # this process: still writing
    with pytest.raises(RuntimeError, match="boom"), write_bundle(tmp_path / "b"):
        raise RuntimeError("boom")
    assert not stale.exists() and alive.exists() and not (tmp_path / "b").exists()


def test_a_refused_out_is_refused_before_the_work(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edgeser.cli import main

    (tmp_path / "taken").mkdir()
    result = CliRunner().invoke(main, ["quantize", "default", "--precision", "fp16", "--out", str(tmp_path / "taken")])
    assert result.exit_code == 1 and "already exists" in result.output and "calibration" not in result.output


def test_a_file_too_large_for_a_bundle_is_refused_when_written(tmp_path: Path) -> None:
    from edgeser.model.bundle import MAX_FILE_BYTES, Manifest
    from edgeser.model.writer import write_bundle

    with pytest.raises(BundleError, match="more than a bundle file may be"), write_bundle(tmp_path / "b") as w:
        with open(w.path("speech.onnx"), "wb") as f:
            f.truncate(MAX_FILE_BYTES + 1)  # sparse: nothing is written to the disk
        w.finish(Manifest(edgeser_version="0", created="now", labels=("a", "b"), files={}, speech=None, text=None))
    assert not (tmp_path / "b").exists()


def test_weights_in_an_unlisted_file_are_refused_at_load_and_signing(bundle: Path, tmp_path: Path) -> None:
    """The fusion graph's weights moved to ONNX external data that bundle.json does not list: neither hash nor
    signature covered that file, so editing it changed the label behind a valid signature (issue 25, item 15).
    Loading and signing now refuse such a bundle."""
    onnx = pytest.importorskip("onnx")
    from edgeser.model.bundle import sha256_file

    graph = bundle / "fusion.onnx"
    model = onnx.load(str(graph))
    onnx.save_model(model, str(graph), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="fusion.bin", size_threshold=0)
    edit(bundle, lambda d: d["files"]["fusion.onnx"].update(sha256=sha256_file(graph), bytes=graph.stat().st_size))
    with pytest.raises(BundleError, match=r"keeps weights in 'fusion\.bin', which bundle\.json does not list"):
        EmotionRecognizer.from_bundle(bundle)
    pytest.importorskip("cryptography")
    from edgeser.model.signing import generate_key, sign_bundle

    private, _ = generate_key(tmp_path / "k")
    with pytest.raises(BundleError, match="does not list"):
        Bundle.load(bundle)  # what `edgeser sign` checks first
        sign_bundle(bundle, private)


@pytest.mark.parametrize("name", ["fusion\x00.onnx", "x" * 300, "dir/" + "y" * 256])
def test_file_names_no_file_system_takes_are_refused_in_one_line(bundle: Path, name: str) -> None:
    """A NUL byte or a 300-character name gave ValueError / OSError tracebacks from check_files (item 15)."""
    edit(bundle, lambda d: d["files"].update({name: {"sha256": "0" * 64, "bytes": 1}}))
    with pytest.raises(BundleError, match="control characters or a part over 255 bytes"):
        Bundle.load(bundle)


def test_trust_reads_a_bounded_public_key_and_never_echoes_a_private_one(tmp_path: Path) -> None:
    """--trust /dev/zero read 2.9 GB, then MemoryError; --trust given the private key printed its first bytes."""
    pytest.importorskip("cryptography")
    from click.testing import CliRunner

    from edgeser.cli import main
    from edgeser.model.signing import generate_key

    private, _ = generate_key(tmp_path / "k")
    for key, says in (("/dev/zero", "not a regular file"), (str(private), "that is a private key")):
        result = CliRunner().invoke(main, ["predict", str(SAMPLE), "--trust", key])
        assert result.exit_code == 2 and says in result.output, result.output
    secret = private.read_text()
    body = "".join(line for line in secret.splitlines() if "PRIVATE KEY" not in line)
    assert body[:12] not in result.output
    big = tmp_path / "big.pub"
    big.write_text("ed25519:" + "A" * 10_000)
    result = CliRunner().invoke(main, ["predict", str(SAMPLE), "--trust", str(big)])
    assert result.exit_code == 2 and "not a key file" in result.output
