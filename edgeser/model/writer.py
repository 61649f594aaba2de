"""Writing a bundle whole or not at all: files go to a temporary sibling folder (owned by this process) that is
renamed into place only when ``bundle.json`` is written, so an interrupted export leaves no half bundle, and a
staging folder left by a dead process is cleared the next time."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from edgeser.errors import BundleError
from edgeser.model.bundle import MANIFEST, MAX_FILE_BYTES, FileEntry, Manifest, sha256_file

log = logging.getLogger(__name__)


class BundleWriter:
    """Builds a bundle in a temporary sibling folder and renames it into place on success.

    Use :func:`write_bundle`, which also handles failure and overwriting.
    """

    def __init__(self, staging: Path) -> None:
        self.staging = staging

    def path(self, name: str) -> Path:
        """Where to write the bundle file ``name`` (a relative path inside the bundle)."""
        p = self.staging / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def finish(self, manifest: Manifest) -> Manifest:
        """Hash every file in the staging folder and write ``bundle.json``; return the final manifest."""
        files = {}
        (self.staging / OWNER).unlink(missing_ok=True)
        for p in sorted(self.staging.rglob("*")):
            if p.is_file() and p.name != MANIFEST:
                if (size := p.stat().st_size) > MAX_FILE_BYTES:
                    raise BundleError(f"{p.name}: {size} bytes, more than a bundle file may be ({MAX_FILE_BYTES}); "
                                      "store large weights as ONNX external data in several files")
                files[p.relative_to(self.staging).as_posix()] = FileEntry(sha256_file(p), p.stat().st_size)
        final = replace(manifest, files=files)
        data = json.dumps(final.to_dict(), indent=2, ensure_ascii=False) + "\n"
        with open(self.staging / MANIFEST, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return final


@contextmanager
def write_bundle(out: str | os.PathLike[str], overwrite: bool = False) -> Iterator[BundleWriter]:
    """Stage a bundle and move it to ``out`` only if the ``with`` body (which must call ``finish``) succeeds.

    On any exception the staging folder is removed and ``out`` is left as it was.

    Raises:
        BundleError: ``out`` exists and ``overwrite`` is false, or the body did not call ``finish``.
    """
    with staged_folder(check_out(out, overwrite)) as staging:
        yield BundleWriter(staging)
        if not (staging / MANIFEST).is_file():
            raise BundleError("internal: bundle written without calling BundleWriter.finish()")


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """A new folder beside ``target`` to write into, moved to ``target`` when the ``with`` body succeeds (an
    existing ``target`` is replaced only then, by two renames) and removed when it fails: a folder that others
    read (a bundle, a calibration set) is never seen half-written. The staging folder holds :data:`OWNER` while
    it is written, so that one left by a killed process is removed at the next write to ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    staging.chmod(default_dir_mode())  # mkdtemp makes it private; the result is as readable as any folder
    (staging / OWNER).write_text(f"{os.getpid()} {socket.gethostname()}\n")
    try:
        yield staging
        (staging / OWNER).unlink(missing_ok=True)
        if target.exists():
            retired = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            target.rename(retired)
            staging.rename(target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


OWNER = ".edgeser-owner"  # in a staging folder: the pid and host of the process writing it


def check_out(out: str | os.PathLike[str], overwrite: bool) -> Path:
    """The resolved output folder, refused if it exists without ``overwrite``: call it before the work starts."""
    target = Path(out).expanduser().resolve()
    if target.exists() and not overwrite:
        raise BundleError(f"{target}: already exists; choose another --out or pass --overwrite")
    if target.exists() and not target.is_dir():
        raise BundleError(f"{target}: is a file, not a bundle folder; choose another --out")
    return target


def remove_stale_staging(target: Path) -> list[Path]:
    """Remove the staging folders of writes to ``target`` whose process (on this host) is gone, as a killed
    export leaves them; returns what was removed (each is logged)."""
    removed = []
    for staging in target.parent.glob(f".{target.name}.staging-*"):
        try:
            pid, host = (staging / OWNER).read_text().split()
            os.kill(int(pid), 0)
            continue  # still being written
        except ProcessLookupError:
            if host != socket.gethostname():
                continue
        except (OSError, ValueError):
            continue  # no owner record (or not ours to judge): leave it
        shutil.rmtree(staging, ignore_errors=True)
        log.warning("removed %s, left by an interrupted write (process %s is gone)", staging, pid)
        removed.append(staging)
    return removed


def default_dir_mode() -> int:
    """The mode a new folder gets under the current umask (``0o755`` under the usual ``022``)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask
