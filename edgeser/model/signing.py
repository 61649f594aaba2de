"""Bundle signatures, so that a robot can refuse a bundle it was not given.

A bundle's ``bundle.json`` lists the sha256 of every file in it, so one Ed25519 signature over the exact bytes
of ``bundle.json`` covers the whole bundle. The signature lives beside it in ``bundle.sig`` (JSON: the
algorithm, the signer's public key, the signed file's sha256 and the signature, base64). Keys and signatures
are made and checked by the ``cryptography`` package (``pip install "edgeser[sign]"``); edgeser writes no
cryptography of its own.

    edgeser keygen --out ~/.edgeser/release          # release (private, 0600) and release.pub
    edgeser sign bundles/default-int8 --key ~/.edgeser/release
    edgeser predict a.wav --bundle bundles/default-int8 --trust release.pub

In Python: ``RuntimeOptions(trusted_keys=(Path("release.pub").read_text(),))``. A bundle whose signature is
missing, broken, or made by a key not trusted is then refused with :class:`~edgeser.errors.BundleError`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeser._optional import require
from edgeser.errors import BundleError
from edgeser.model.bundle import MANIFEST, SIGNATURE

FORMAT = "edgeser-signature"
PREFIX = "ed25519:"


def _crypto() -> Any:
    require("cryptography", "sign", "signing and checking bundles")
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519


def key_id(public_key: str) -> str:
    """A short name of a public key (``ed25519:<base64>``): the first 16 hex digits of its sha256."""
    return hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]


def _raw_public(public_key: str) -> bytes:
    text = public_key.strip()
    if "PRIVATE KEY" in text:  # never echo a secret back
        raise BundleError("that is a private key: pass the public one (the .pub file `edgeser keygen` wrote beside "
                          "it), and keep the private key secret")
    if not text.startswith(PREFIX):
        raise BundleError(f"a public key must read '{PREFIX}<base64>' (a .pub file from `edgeser keygen`), got "
                          f"{text[:30]!r}")
    try:
        raw = base64.b64decode(text[len(PREFIX):], validate=True)
    except ValueError as e:
        raise BundleError(f"public key {text[:30]!r}...: not valid base64") from e
    if len(raw) != 32:
        raise BundleError(f"public key {text[:30]!r}...: {len(raw)} bytes, an Ed25519 key has 32")
    return raw


def generate_key(out: Path) -> tuple[Path, Path]:
    """Write a new private key to ``out`` (PEM, readable by its owner only) and its public key to
    ``out.pub``; returns both paths. Refuses to replace an existing key."""
    from cryptography.hazmat.primitives import serialization

    ed25519 = _crypto()
    public_path = out.with_name(out.name + ".pub")
    for p in (out, public_path):
        if p.exists():
            raise BundleError(f"{p}: already exists; a key is never overwritten, choose another --out")
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path.write_text(public_text(key.public_key()) + "\n")
    return out, public_path


def public_text(public_key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PREFIX + base64.b64encode(raw).decode()


def sign_bundle(bundle: Path, key: Path) -> str:
    """Sign ``bundle/bundle.json`` with the private key file ``key``; writes ``bundle.sig``; returns the key id."""
    from cryptography.hazmat.primitives import serialization

    ed25519 = _crypto()
    try:
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise BundleError(f"{key}: not a private key from `edgeser keygen` ({e})") from e
    if not isinstance(private, ed25519.Ed25519PrivateKey):
        raise BundleError(f"{key}: not an Ed25519 private key")
    manifest = (bundle / MANIFEST).read_bytes()
    public = public_text(private.public_key())
    record = {"format": FORMAT, "algorithm": "ed25519", "public_key": public,
              "signed_sha256": hashlib.sha256(manifest).hexdigest(),
              "signature": base64.b64encode(private.sign(manifest)).decode()}
    tmp = bundle / f".{SIGNATURE}.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(bundle / SIGNATURE)
    return key_id(public)


def read_signature(bundle: Path) -> dict[str, Any] | None:
    """``bundle.sig`` parsed, or ``None`` when the bundle is unsigned."""
    path = bundle / SIGNATURE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8")) if path.stat().st_size < 16_384 else None
    except (ValueError, UnicodeDecodeError):
        record = None
    if not isinstance(record, dict) or record.get("format") != FORMAT or record.get("algorithm") != "ed25519":
        raise BundleError(f"{path}: not an edgeser Ed25519 signature; re-sign the bundle (edgeser sign)")
    return record


def verify(bundle: Path, manifest: bytes, trusted: Sequence[str] = ()) -> str | None:
    """Check ``bundle.sig`` against the exact ``manifest`` bytes; returns the signer's key id (``None`` when
    unsigned and nothing is trusted).

    With ``trusted`` public keys, the bundle must be signed by one of them.

    Raises:
        BundleError: A broken signature, or (with ``trusted``) a missing one or another signer.
    """
    record = read_signature(bundle)
    if record is None:
        if trusted:
            raise BundleError(f"{bundle}: unsigned, and only bundles signed by a trusted key are accepted; sign it "
                              "with `edgeser sign` (or drop --trust)")
        return None
    from cryptography.exceptions import InvalidSignature

    ed25519 = _crypto()
    public = str(record.get("public_key", ""))
    try:
        key = ed25519.Ed25519PublicKey.from_public_bytes(_raw_public(public))
        key.verify(base64.b64decode(str(record.get("signature", "")), validate=True), manifest)
    except (InvalidSignature, ValueError) as e:
        raise BundleError(f"{bundle / SIGNATURE}: the signature does not match bundle.json (it was changed after "
                          "signing, or the signature was tampered with); re-sign or re-export the bundle") from e
    signer = key_id(public)
    if trusted and signer not in {key_id(t) for t in trusted}:
        raise BundleError(f"{bundle}: signed by key {signer}, which is not among the trusted keys "
                          f"({', '.join(key_id(t) for t in trusted)})")
    return signer
