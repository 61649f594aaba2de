"""The bundle: a folder with a versioned ``bundle.json`` that describes every file in it.

Loading checks the schema version, that every listed file exists with its recorded size and
sha256, and that the sections are complete. Writing (:mod:`edgeser.model.writer`) goes to a temporary sibling
folder that is renamed into place only when complete, so an interrupted export leaves no half bundle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from edgeser.errors import BundleError
from edgeser.model.specs import FrameFormula, GraphSpec

FORMAT = "edgeser-bundle"
SCHEMA_VERSION = 1
MANIFEST = "bundle.json"
SIGNATURE = "bundle.sig"  # beside it, in a signed bundle (edgeser.model.signing)
log = logging.getLogger(__name__)
DEFAULT_LABELS = ("neutral", "happy", "angry", "sad")
"""The paper's four IEMOCAP classes (excited merged into happy)."""
MAX_MANIFEST_BYTES = 4 << 20  # the default's bundle.json is 13 KB
MAX_FILES = 256  # the default lists 4 files; a bundle with TensorRT engines for several devices, a few dozen
MAX_FILE_BYTES = 8 << 30  # one file (a large wav2vec2 graph's external data is about 1.3 GB): more is refused before
# anything is read or hashed
FUSION_LEVELS = ("frame", "phone", "syllable", "word")
FRAME_MASKS = ("all", "voiced")
"""What a head pools its frames over (:attr:`HeadSection.frame_mask`)."""


def strings(value: Any, where: str, *, distinct: bool = False, allowed: tuple[str, ...] | None = None,
            at_least: int = 0) -> tuple[str, ...]:
    """A bundle.json list of strings, checked (``where`` names it in the error)."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BundleError(f"{MANIFEST}: {where} must be a list of non-empty strings, got {str(value)[:60]}; "
                          "re-export the bundle")
    if distinct and len(set(value)) != len(value):
        raise BundleError(f"{MANIFEST}: {where} has repeated names {value}; re-export the bundle")
    if allowed is not None and (unknown := [v for v in value if v not in allowed]):
        raise BundleError(f"{MANIFEST}: {where} has {unknown}, expected among {list(allowed)}")
    if len(value) < at_least:
        raise BundleError(f"{MANIFEST}: {where} needs at least {at_least} entries, got {len(value)}")
    return tuple(value)


def integer(value: Any, where: str, low: int = 0, high: int | None = None) -> int:
    """A bundle.json whole number of at least ``low`` (booleans and floats refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"from {low} to {high}"
        raise BundleError(f"{MANIFEST}: {where} must be a whole number {bounds}, got {str(value)[:40]}; "
                          "re-export the bundle")
    return value


def _number(value: Any, where: str) -> float:
    """A bundle.json finite number (booleans refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BundleError(f"{MANIFEST}: {where} must be a finite number, got {str(value)[:40]}; re-export the bundle")
    return float(value)


@dataclass(frozen=True)
class CtcVocab:
    """The CTC output vocabulary. The blank is explicit: never guessed from token names."""

    tokens: tuple[str, ...]
    blank_id: int
    word_delimiter: str | None
    unk_token: str | None
    kind: str  # "characters" or "phonemes"

    def __post_init__(self) -> None:
        if not 0 <= self.blank_id < len(self.tokens):
            raise BundleError(f"CTC blank id {self.blank_id} is outside the vocabulary of {len(self.tokens)} tokens")
        if self.word_delimiter is not None and self.word_delimiter not in self.tokens:
            raise BundleError(f"CTC word delimiter {self.word_delimiter!r} is not in the vocabulary")
        if len(set(self.tokens)) != len(self.tokens):
            raise BundleError("CTC vocabulary has duplicate tokens")

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": list(self.tokens), "blank_id": self.blank_id, "word_delimiter": self.word_delimiter,
                "unk_token": self.unk_token, "kind": self.kind}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CtcVocab:
        return cls(tokens=strings(d["tokens"], "CTC tokens"), blank_id=integer(d["blank_id"], "CTC blank_id"),
                   word_delimiter=d["word_delimiter"],
                   unk_token=d["unk_token"], kind=str(d["kind"]))


@dataclass(frozen=True)
class SpeechSection:
    """The speech encoder graph: one pass gives the exposed hidden states and, for a CTC model, CTC logits.

    A Whisper encoder has no CTC head (``ctc`` is ``None``): its segments come from the default phoneme
    aligner. ``architecture`` names the encoder family (``"ctc"``: wav2vec2-style ``*ForCTC``; ``"whisper"``),
    ``front_end`` describes what the graph computes from raw audio before the encoder (Whisper's log-mel),
    and ``max_samples`` is the longest input the graph accepts (Whisper's 1500 positions: 30 s).
    """

    graph: str
    spec: GraphSpec
    frames: FrameFormula
    hidden_size: int
    num_layers: int
    exposed_layers: tuple[int, ...]
    normalize_input: bool
    uses_attention_mask: bool
    ctc: CtcVocab | None
    provenance: dict[str, Any] = field(default_factory=dict)
    architecture: str = "ctc"
    front_end: dict[str, Any] | None = None
    max_samples: int | None = None

    def __post_init__(self) -> None:
        if self.architecture not in ("ctc", "whisper"):
            raise BundleError(f"speech architecture must be 'ctc' or 'whisper', got {self.architecture!r}")
        if (self.ctc is None) != (self.architecture == "whisper"):
            raise BundleError(f"a {self.architecture} speech encoder {'needs' if self.ctc is None else 'has no'} "
                              "CTC vocabulary; re-export the bundle")
        if self.architecture == "whisper" and self.normalize_input:
            raise BundleError("a Whisper encoder reads raw audio (its log-mel front end normalises), but bundle.json "
                              "says normalize_input; the file was edited, re-export the bundle")
        if len(set(self.exposed_layers)) != len(self.exposed_layers) or \
                any(i > self.num_layers for i in self.exposed_layers):
            raise BundleError(f"exposed layers {list(self.exposed_layers)} must be distinct and at most num_layers "
                              f"({self.num_layers}); re-export the bundle")

    def require_ctc(self) -> CtcVocab:
        """The CTC vocabulary, or a :class:`BundleError` saying this encoder has none."""
        if self.ctc is None:
            raise BundleError(f"this bundle's speech encoder ({self.architecture}) has no CTC head, so it cannot "
                              "segment by itself; segments come from the default aligner (edgeser.alignment.aligner, "
                              "`edgeser align` without --bundle)")
        return self.ctc

    def to_dict(self) -> dict[str, Any]:
        d = {"graph": self.graph, "spec": self.spec.to_dict(), "frames": self.frames.to_dict(),
             "hidden_size": self.hidden_size, "num_layers": self.num_layers,
             "exposed_layers": list(self.exposed_layers), "normalize_input": self.normalize_input,
             "uses_attention_mask": self.uses_attention_mask, "ctc": self.ctc.to_dict() if self.ctc else None,
             "provenance": self.provenance}
        if self.architecture != "ctc":
            d |= {"architecture": self.architecture, "front_end": self.front_end, "max_samples": self.max_samples}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SpeechSection:
        return cls(graph=str(d["graph"]), spec=GraphSpec.from_dict(d["spec"]),
                   frames=FrameFormula.from_dict(d["frames"]), hidden_size=integer(d["hidden_size"], "hidden_size", 1),
                   num_layers=integer(d["num_layers"], "num_layers"),
                   exposed_layers=tuple(integer(i, "exposed_layers") for i in d["exposed_layers"]),
                   normalize_input=bool(d["normalize_input"]), uses_attention_mask=bool(d["uses_attention_mask"]),
                   ctc=CtcVocab.from_dict(d["ctc"]) if d.get("ctc") is not None else None,
                   provenance=dict(d.get("provenance", {})), architecture=str(d.get("architecture", "ctc")),
                   front_end=dict(d["front_end"]) if d.get("front_end") is not None else None,
                   max_samples=int(d["max_samples"]) if d.get("max_samples") is not None else None)


@dataclass(frozen=True)
class TextSection:
    """The text encoder graph and its tokenizer (a ``tokenizers`` JSON file)."""

    graph: str
    tokenizer: str
    spec: GraphSpec
    hidden_size: int
    max_tokens: int
    pad_id: int
    pad_token: str
    unk_token: str | None
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"graph": self.graph, "tokenizer": self.tokenizer, "spec": self.spec.to_dict(),
                "hidden_size": self.hidden_size, "max_tokens": self.max_tokens, "pad_id": self.pad_id,
                "pad_token": self.pad_token, "unk_token": self.unk_token, "provenance": self.provenance}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TextSection:
        return cls(graph=str(d["graph"]), tokenizer=str(d["tokenizer"]), spec=GraphSpec.from_dict(d["spec"]),
                   hidden_size=int(d["hidden_size"]), max_tokens=int(d["max_tokens"]), pad_id=int(d["pad_id"]),
                   pad_token=str(d["pad_token"]), unk_token=d.get("unk_token"),
                   provenance=dict(d.get("provenance", {})))


@dataclass(frozen=True)
class HeadSection:
    """An emotion head's graph: pooled speech levels (from ``layer`` of the speech graph's exposed layers), and text
    token embeddings where it reads text, in; log-probabilities over ``Manifest.labels`` out. bundle.json keeps the
    key ``fusion`` (and ``speaker_fusion``) for it, the paper's fused head being the first it held."""

    graph: str
    spec: GraphSpec
    levels: tuple[str, ...]
    uses_text: bool
    layer: int  # index into speech.exposed_layers
    provenance: dict[str, Any] = field(default_factory=dict)
    segmenter: str = "bundle"
    """Where the segments the head was trained on came from: ``"bundle"`` (the speech graph's own CTC head,
    one encoder pass) or ``"hama"`` (the default phoneme aligner, a second, small pass). Prediction uses
    the same, so that features match training."""
    boundaries: dict[str, Any] | None = None
    """The boundary rule (``SegmentOptions.boundary_rule()``) the head's training segments were cut with;
    prediction cuts its segments the same way, whatever the library's current defaults. ``None`` (bundles
    written before it was recorded): the current defaults."""
    frame_mask: str = "all"
    """Which frames the head pools over: ``"voiced"``, the encoder run over the speech span only and the frames of it
    that silero-vad calls speech (:meth:`edgeser.EmotionRecognizer.encode_speech`), or ``"all"``, every frame of the
    whole utterance, silence included (bundles written before the choice existed)."""
    temperature: float = 1.0
    """The head's probabilities are calibrated as ``softmax(log p / temperature)``, the temperature fitted on
    corpora the head was scored on but not trained with (:mod:`edgeser_export.multicorpus`); 1: as the graph gives."""

    def __post_init__(self) -> None:
        if self.segmenter not in ("bundle", "hama"):
            raise BundleError(f"fusion segmenter must be 'bundle' or 'hama', got {self.segmenter!r}")
        if self.frame_mask not in FRAME_MASKS:
            raise BundleError(f"fusion frame_mask must be one of {list(FRAME_MASKS)}, got {self.frame_mask!r}")
        if self.frame_mask == "voiced" and tuple(self.levels) != ("frame",):
            raise BundleError(f"a head that pools voiced frames reads frames only, this one reads {list(self.levels)}")
        if not (isinstance(self.temperature, (int, float)) and 0.05 <= self.temperature <= 20):
            raise BundleError(f"fusion temperature must be a number from 0.05 to 20, got {self.temperature!r}")
        if self.boundaries is not None:
            from edgeser.options import SegmentOptions

            try:
                SegmentOptions().with_boundary_rule(self.boundaries)
            except (ValueError, TypeError) as e:
                raise BundleError(f"fusion boundaries: {e}") from e

    def to_dict(self) -> dict[str, Any]:
        d = {"graph": self.graph, "spec": self.spec.to_dict(), "levels": list(self.levels),
             "uses_text": self.uses_text, "layer": self.layer, "segmenter": self.segmenter,
             "frame_mask": self.frame_mask, "temperature": self.temperature, "provenance": self.provenance}
        if self.boundaries is not None:
            d["boundaries"] = self.boundaries
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HeadSection:
        return cls(graph=str(d["graph"]), spec=GraphSpec.from_dict(d["spec"]),
                   levels=strings(d["levels"], "fusion levels", distinct=True, allowed=FUSION_LEVELS),
                   uses_text=bool(d["uses_text"]), layer=integer(d["layer"], "fusion layer"),
                   provenance=dict(d.get("provenance", {})),
                   segmenter=str(d.get("segmenter", "bundle")), frame_mask=str(d.get("frame_mask", "all")),
                   temperature=_number(d.get("temperature", 1.0), "fusion temperature"),
                   boundaries=dict(d["boundaries"]) if d.get("boundaries") is not None else None)


@dataclass(frozen=True)
class EngineEntry:
    """A TensorRT engine built from one of the bundle's graphs, for one TensorRT version and GPU.

    ``profile`` maps each input to its ``[min, opt, max]`` shapes. Engines are not portable: the runtime
    refuses one built for another TensorRT version or GPU.
    """

    graph: str  # "speech", "text" or "fusion"
    file: str
    tensorrt_version: str
    gpu: str
    compute_capability: str
    precision: str
    profile: dict[str, list[list[int]]]
    timing_cache: str | None = None
    onnx_sha256: str | None = None  # the graph it was built from; the runtime refuses it for any other

    def to_dict(self) -> dict[str, Any]:
        return {"graph": self.graph, "file": self.file, "tensorrt_version": self.tensorrt_version, "gpu": self.gpu,
                "compute_capability": self.compute_capability, "precision": self.precision,
                "profile": self.profile, "timing_cache": self.timing_cache, "onnx_sha256": self.onnx_sha256}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EngineEntry:
        return cls(graph=str(d["graph"]), file=str(d["file"]), tensorrt_version=str(d["tensorrt_version"]),
                   gpu=str(d["gpu"]), compute_capability=str(d["compute_capability"]),
                   precision=str(d["precision"]), profile={k: [list(map(int, s)) for s in v]
                                                           for k, v in d["profile"].items()},
                   timing_cache=d.get("timing_cache"),
                   onnx_sha256=None if d.get("onnx_sha256") is None else str(d["onnx_sha256"]))


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Manifest:
    """The parsed ``bundle.json``."""

    edgeser_version: str
    created: str
    labels: tuple[str, ...]
    files: dict[str, FileEntry]
    speech: SpeechSection | None
    text: TextSection | None
    schema_version: int = SCHEMA_VERSION
    fusion: HeadSection | None = None
    engines: tuple[EngineEntry, ...] = ()
    speaker_fusion: HeadSection | None = None
    """A head trained on frames z-scored with each speaker's own statistics, used when a speaker profile is given
    (:mod:`edgeser.speaker`); ``None`` when the bundle has none."""

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "schema_version": self.schema_version, "edgeser_version": self.edgeser_version,
                "created": self.created, "labels": list(self.labels),
                "files": {k: {"sha256": v.sha256, "bytes": v.bytes} for k, v in sorted(self.files.items())},
                "speech": self.speech.to_dict() if self.speech else None,
                "text": self.text.to_dict() if self.text else None,
                "fusion": self.fusion.to_dict() if self.fusion else None,
                **({"engines": [e.to_dict() for e in self.engines]} if self.engines else {}),
                **({"speaker_fusion": self.speaker_fusion.to_dict()} if self.speaker_fusion else {})}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Manifest:
        if d.get("format") != FORMAT:
            raise BundleError(f"{MANIFEST}: 'format' is {d.get('format')!r}, expected {FORMAT!r}; "
                              "this folder is not an edgeser bundle")
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            hint = ("upgrade edgeser (pip install -U edgeser)" if isinstance(version, int) and version > SCHEMA_VERSION
                    else "re-export the bundle with this edgeser (edgeser export ...)")
            raise BundleError(f"{MANIFEST}: schema version {version!r}, this edgeser reads version "
                              f"{SCHEMA_VERSION}; {hint}")
        files = d.get("files")
        if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
            raise BundleError(f"{MANIFEST}: 'files' must map each file name to its sha256 and bytes; re-export "
                              "the bundle")
        if len(files) > MAX_FILES:
            raise BundleError(f"{MANIFEST}: lists {len(files)} files, more than a bundle holds ({MAX_FILES}); the "
                              "manifest was tampered with, re-export the bundle")
        for name in files:
            parts = PurePosixPath(name).parts
            if not parts or PurePosixPath(name).is_absolute() or ".." in parts or "\\" in name:
                raise BundleError(f"{MANIFEST}: file name {name!r} points outside the bundle; the manifest was "
                                  "tampered with, re-export the bundle")
            if any(ord(c) < 32 or c == "\x7f" for c in name) or any(len(p.encode()) > 255 for p in parts):
                raise BundleError(f"{MANIFEST}: file name {name[:60]!r}{'...' if len(name) > 60 else ''} holds "
                                  "control characters or a part over 255 bytes, which no file system names; the "
                                  "manifest was tampered with, re-export the bundle")
        try:
            return cls(
                edgeser_version=str(d["edgeser_version"]), created=str(d["created"]),
                labels=strings(d["labels"], "labels", distinct=True, at_least=2),
                files={k: FileEntry(sha256=str(v["sha256"]), bytes=integer(v["bytes"], f"files[{k!r}].bytes",
                                                                               high=MAX_FILE_BYTES))
                       for k, v in files.items()},
                speech=SpeechSection.from_dict(d["speech"]) if d.get("speech") else None,
                text=TextSection.from_dict(d["text"]) if d.get("text") else None,
                schema_version=version,
                fusion=HeadSection.from_dict(d["fusion"]) if d.get("fusion") else None,
                engines=tuple(EngineEntry.from_dict(e) for e in d.get("engines", [])),
                speaker_fusion=HeadSection.from_dict(d["speaker_fusion"]) if d.get("speaker_fusion") else None)
        except (LookupError, TypeError, ValueError, AttributeError, OverflowError) as e:  # int(inf): Overflow
            raise BundleError(f"{MANIFEST}: missing or malformed entry ({type(e).__name__}: {e}); the file is "
                              "incomplete or was edited by hand; re-export the bundle") from e


@dataclass(frozen=True)
class FileCheck:
    """The result of checking one listed file."""

    name: str
    ok: bool
    detail: str


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def digest_of(manifest: bytes) -> str:
    """``sha256:<hex>`` of a bundle.json's bytes: it lists every file's sha256, so it names the whole bundle."""
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def manifest_digest(root: Path) -> str:
    """The :func:`digest_of` ``root/bundle.json``."""
    return digest_of(manifest_bytes(root))


@dataclass(frozen=True)
class Bundle:
    """A loaded, checked bundle folder. ``digest`` names it (:func:`manifest_digest`); ``signer`` is the key id
    of its valid signature (:mod:`edgeser.model.signing`), ``None`` when unsigned."""

    path: Path
    manifest: Manifest
    digest: str = ""
    signer: str | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str], verify_hashes: bool = True, *, digest: str | None = None,
             trusted_keys: tuple[str, ...] = ()) -> Bundle:
        """Read ``bundle.json`` and check every file it lists.

        Args:
            digest: When given, the bundle's :func:`manifest_digest` must equal it.
            trusted_keys: When given, the bundle must carry a valid signature by one of these public keys.

        Raises:
            BundleError: Naming the file at fault and the fix.
        """
        root = Path(path).expanduser().resolve()
        raw = manifest_bytes(root)  # one read: the bytes parsed are the bytes digested and verified
        manifest = parse_manifest(raw, root / MANIFEST)
        found = digest_of(raw)
        if digest is not None and found != digest:
            raise BundleError(f"{root}: its digest is {found}, not the {digest} it was expected to have; this is "
                              "another (or a modified) bundle")
        signer = None
        if trusted_keys or (root / SIGNATURE).exists():
            from edgeser.model.signing import verify

            signer = verify(root, raw, trusted_keys)
        bundle = cls(path=root, manifest=manifest, digest=found, signer=signer)
        for check in bundle.check_files(verify_hashes=verify_hashes):
            if not check.ok:
                raise BundleError(f"{root / check.name}: {check.detail}")
        return bundle

    def file(self, name: str) -> Path:
        """The absolute path of a listed file."""
        if name not in self.manifest.files:
            raise BundleError(f"{self.path / MANIFEST}: refers to {name!r}, which is not in its file list; "
                              "re-export the bundle")
        return self.path / name

    def check_files(self, verify_hashes: bool = True) -> list[FileCheck]:
        """Check each listed file (existence, size, sha256) and that sections refer to listed files."""
        checks = []
        for name, entry in sorted(self.manifest.files.items()):
            p = self.path / name
            if p.is_symlink() or not p.resolve().is_relative_to(self.path):
                checks.append(FileCheck(name, False, "is a link (or lies outside the bundle folder); a bundle holds "
                                                     "its own files, copy the file in"))
            elif not p.is_file():
                checks.append(FileCheck(name, False, "missing; the bundle is incomplete, re-export it or "
                                                     "restore the file"))
            elif p.stat().st_size != entry.bytes:
                checks.append(FileCheck(name, False, f"size is {p.stat().st_size} bytes, bundle.json records "
                                                     f"{entry.bytes}; the file was modified or truncated, "
                                                     "re-export the bundle or restore the file"))
            elif verify_hashes and (digest := sha256_file(p)) != entry.sha256:
                checks.append(FileCheck(name, False, f"sha256 is {digest[:12]}…, bundle.json records "
                                                     f"{entry.sha256[:12]}…; the file was modified or corrupted, "
                                                     "re-export the bundle or restore the file"))
            else:
                unlisted = sorted(external_data(p) - set(self.manifest.files)) if name.endswith(".onnx") else []
                if unlisted:
                    checks.append(FileCheck(name, False, f"keeps weights in {', '.join(map(repr, unlisted[:3]))}, "
                                                         "which bundle.json does not list (so no hash or signature "
                                                         "covers them); re-export the bundle"))
                else:
                    checks.append(FileCheck(name, True, "sha256 ok" if verify_hashes
                                            else "size ok (hash not checked)"))
        m = self.manifest
        referenced = [m.speech.graph] if m.speech else []
        referenced += [m.text.graph, m.text.tokenizer] if m.text else []
        referenced += [m.fusion.graph] if m.fusion else []
        referenced += [m.speaker_fusion.graph] if m.speaker_fusion else []
        referenced += [e.file for e in m.engines]
        for name in referenced:
            if name not in m.files:
                checks.append(FileCheck(name, False, "referenced by bundle.json but not in its file list; "
                                                     "re-export the bundle"))
        return checks


_LOCATION = b"\x0a\x08location\x12"
"""An ONNX initializer's external-data entry (StringStringEntryProto: field 1 = "location", then field 2)."""


def external_data(graph: Path) -> set[str]:
    """The files an ONNX graph keeps weights in (each initializer's external-data ``location``), read from the
    protobuf's bytes without the onnx package, so that loading and signing can refuse a graph whose weights lie in
    a file the manifest does not list."""
    data = graph.read_bytes()
    out, i = set(), 0
    while (i := data.find(_LOCATION, i)) != -1:
        j, n, shift = i + len(_LOCATION), 0, 0
        while j < len(data):  # the value's length, a varint
            n |= (data[j] & 0x7F) << shift
            shift += 7
            j += 1
            if not data[j - 1] & 0x80:
                break
        out.add(data[j : j + n].decode("utf-8", "replace"))
        i = j + n
    return out


def read_manifest(root: Path) -> Manifest:
    """Parse ``root/bundle.json`` or raise :class:`BundleError` saying what is wrong."""
    return parse_manifest(manifest_bytes(root), root / MANIFEST)


def manifest_bytes(root: Path) -> bytes:
    """The bytes of ``root/bundle.json`` (its own file, of a manifest's size), or a :class:`BundleError`."""
    if not root.is_dir():
        raise BundleError(f"{root}: no bundle folder here; create one (`edgeser export` from checkpoints, "
                          "`edgeser quantize default --precision int8 ... --out DIR` for an INT8 copy of the default) "
                          "or pass the path of an existing bundle")
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"{mpath}: missing; {root} is not an edgeser bundle (or its export was interrupted); "
                          "re-export it with `edgeser export`")
    if mpath.is_symlink():
        raise BundleError(f"{mpath}: is a link; a bundle's manifest must be its own file")
    if (size := mpath.stat().st_size) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{mpath}: {size} bytes, more than a manifest can be ({MAX_MANIFEST_BYTES}); the file is "
                          "not an edgeser manifest or was tampered with")
    return mpath.read_bytes()


def parse_manifest(raw: bytes, mpath: Path) -> Manifest:
    """The manifest in ``raw`` (the bytes of ``mpath``), or a :class:`BundleError` saying what is wrong."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise BundleError(f"{mpath}: not valid JSON ({type(e).__name__}: {str(e)[:100]}); the file is corrupted, "
                          "re-export the bundle") from e
    if not isinstance(data, dict):
        raise BundleError(f"{mpath}: expected a JSON object; re-export the bundle")
    return Manifest.from_dict(data)


def graph_metadata(section: SpeechSection | TextSection | HeadSection) -> dict[str, str]:
    """The key facts written into a graph's ONNX metadata and cross-checked when it is loaded."""
    if isinstance(section, SpeechSection):
        return {"edgeser.role": "speech", "edgeser.sample_rate": str(section.frames.sample_rate),
                "edgeser.hop_samples": str(section.frames.hop_samples),
                "edgeser.receptive_field": str(section.frames.receptive_field),
                "edgeser.hidden_size": str(section.hidden_size),
                "edgeser.exposed_layers": ",".join(map(str, section.exposed_layers)),
                **({"edgeser.vocab_size": str(len(section.ctc.tokens)), "edgeser.blank_id": str(section.ctc.blank_id)}
                   if section.ctc else {"edgeser.architecture": section.architecture,
                                        "edgeser.offset_samples": str(section.frames.offset_samples)})}
    if isinstance(section, HeadSection):
        return {"edgeser.role": "fusion", "edgeser.levels": ",".join(section.levels),
                "edgeser.uses_text": str(section.uses_text).lower()}
    return {"edgeser.role": "text", "edgeser.hidden_size": str(section.hidden_size)}
