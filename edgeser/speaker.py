"""Speaker enrolment: a speaker's feature statistics from unlabelled audio, and the normalisation they drive.

Emotion shows as a departure from how a speaker usually sounds; a speaker-independent model has to guess the
usual. A :class:`SpeakerProfile` holds the mean and standard deviation, per dimension, of the encoder frames of
one speaker's speech (any speech: no labels), on the layer the bundle's head reads. A head trained on frames
z-scored with each training speaker's own statistics (``bundle.json``'s ``speaker_fusion``) then reads the new
speaker's frames z-scored with the profile.

A profile may also describe a **site**: one microphone, one room, one population, from unlabelled audio recorded
there by any number of speakers (``kind: "site"``, ``edgeser enroll --site``). The same head reads frames z-scored
with it: what it removes is then the site's microphone, room and people rather than one voice. Measured
leave-one-corpus-out in ``benchmarks/results/generalisation.json`` (``site_profile``).

A profile is tied to the encoder that made it (the sha256 of the speech graph and the layer): another
encoder's frames live in another space, and a profile for them is refused.

File format (JSON, ``format: "edgeser-speaker"``, ``version: 1``)::

    {"format": "edgeser-speaker", "version": 1, "encoder_sha256": "<speech graph sha256>", "layer": 2,
     "dim": 384, "frames": 5120, "seconds": 102.4, "utterances": 32, "kind": "speaker", "mean": [...],
     "std": [...]}

``kind`` (``"speaker"`` or ``"site"``) is optional; files without it are speaker profiles. ``seconds`` counts the
frames the head reads (speech only, for a head that pools voiced frames).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeser.errors import EdgeserError

FORMAT = "edgeser-speaker"
VERSION = 1
PROFILE_KINDS = ("speaker", "site")
STD_FLOOR = 1e-5
"""Added to the standard deviation, so that a dimension that never moves is not divided by zero."""


class SpeakerError(EdgeserError):
    """A speaker profile that cannot be read or does not belong to this bundle's encoder."""


@dataclass(frozen=True, eq=False)
class SpeakerProfile:
    """One speaker's frame statistics on one layer of one encoder."""

    encoder_sha256: str
    layer: int
    mean: np.ndarray
    std: np.ndarray
    frames: int
    seconds: float
    utterances: int
    kind: str = "speaker"

    def __post_init__(self) -> None:
        if self.kind not in PROFILE_KINDS:
            raise SpeakerError(f"speaker profile: kind must be one of {list(PROFILE_KINDS)}, got {self.kind!r}")
        if self.mean.shape != self.std.shape or self.mean.ndim != 1 or self.mean.size == 0:
            raise SpeakerError(f"speaker profile: mean {self.mean.shape} and std {self.std.shape} must be one "
                               "equally long vector")
        if not (np.isfinite(self.mean).all() and np.isfinite(self.std).all() and (self.std >= 0).all()):
            raise SpeakerError("speaker profile: mean and std must be finite, std non-negative")
        if self.frames < 1:
            raise SpeakerError("speaker profile: no frames; enrol at least one utterance of speech")

    @property
    def dim(self) -> int:
        return int(self.mean.size)

    def normalise(self, frames: np.ndarray) -> np.ndarray:
        """``frames`` (``(..., dim)``) z-scored with this speaker's statistics."""
        out: np.ndarray = ((frames - self.mean) / (self.std + STD_FLOOR)).astype(np.float32)
        return out

    def check(self, encoder_sha256: str, layer: int, dim: int, where: str = "this bundle") -> None:
        """Raise :class:`SpeakerError` unless the profile was made by this encoder, layer and width."""
        if self.encoder_sha256 != encoder_sha256:
            raise SpeakerError(f"the speaker profile was made with another speech encoder (sha256 "
                               f"{self.encoder_sha256[:12]}…, {where} has {encoder_sha256[:12]}…); enrol the speaker "
                               "again with this bundle: edgeser enroll AUDIO... --bundle ... --out SPEAKER.json")
        if self.layer != layer or self.dim != dim:
            raise SpeakerError(f"the speaker profile is of layer {self.layer} ({self.dim} wide), {where} reads layer "
                               f"{layer} ({dim} wide); enrol the speaker again with this bundle")

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "encoder_sha256": self.encoder_sha256, "layer": self.layer,
                "dim": self.dim, "frames": self.frames, "seconds": round(self.seconds, 3),
                "utterances": self.utterances, "kind": self.kind, "mean": [float(v) for v in self.mean],
                "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, d: Any, source: str = "speaker profile") -> SpeakerProfile:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise SpeakerError(f"{source}: not an edgeser speaker profile (format {FORMAT!r}); make one with "
                               "`edgeser enroll`")
        if d.get("version") != VERSION:
            raise SpeakerError(f"{source}: speaker profile version {d.get('version')!r}, this edgeser reads "
                               f"version {VERSION}; enrol the speaker again")
        try:
            with np.errstate(over="ignore"):  # a value past float32 becomes inf, which the checks refuse
                mean, std = np.asarray(d["mean"], dtype=np.float32), np.asarray(d["std"], dtype=np.float32)
            profile = cls(encoder_sha256=str(d["encoder_sha256"]), layer=int(d["layer"]), mean=mean, std=std,
                          frames=int(d["frames"]), seconds=float(d["seconds"]), utterances=int(d["utterances"]),
                          kind=str(d.get("kind", "speaker")))
            dim = int(d.get("dim", profile.dim))
        except SpeakerError as e:  # the profile's own checks: say which file
            raise SpeakerError(f"{source}: {str(e).removeprefix('speaker profile: ')}; enrol the speaker again") from e
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise SpeakerError(f"{source}: missing or malformed entry ({type(e).__name__}: {e}); enrol the "
                               "speaker again") from e
        if dim != profile.dim:
            raise SpeakerError(f"{source}: 'dim' is {d.get('dim')} but the vectors have {profile.dim} values")
        return profile

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the profile atomically (a temporary file renamed into place)."""
        target = Path(path).expanduser()
        if not target.parent.is_dir():
            raise SpeakerError(f"{target.parent}: no such folder for the speaker profile; create it first")
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.to_dict(), f)
                f.write("\n")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SpeakerProfile:
        p = Path(path).expanduser()
        if not p.is_file():
            raise SpeakerError(f"{p}: no such speaker profile; make one with `edgeser enroll AUDIO... --out {p.name}`")
        if p.stat().st_size > 16 << 20:
            raise SpeakerError(f"{p}: {p.stat().st_size} bytes is far too large for a speaker profile")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SpeakerError(f"{p}: not valid JSON ({e}); enrol the speaker again") from e
        return cls.from_dict(data, str(p))


class SpeakerStats:
    """Running per-dimension mean and variance of frames (Chan et al.'s parallel update, in float64), for
    enrolment and for the running per-session estimate of a stream."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.count = 0
        self.utterances = 0
        self.seconds = 0.0
        self._mean = np.zeros(dim, np.float64)
        self._m2 = np.zeros(dim, np.float64)

    def add(self, frames: np.ndarray, seconds: float = 0.0) -> None:
        """Add one utterance's frames ``(n, dim)``."""
        x = np.asarray(frames, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise SpeakerError(f"expected frames of shape (n, {self.dim}), got {x.shape}")
        n = x.shape[0]
        if n == 0:
            return
        mean, m2 = x.mean(axis=0), ((x - x.mean(axis=0)) ** 2).sum(axis=0)
        total = self.count + n
        delta = mean - self._mean
        self._mean += delta * n / total
        self._m2 += m2 + delta ** 2 * self.count * n / total
        self.count = total
        self.utterances += 1
        self.seconds += seconds

    def profile(self, encoder_sha256: str, layer: int, kind: str = "speaker") -> SpeakerProfile:
        if self.count == 0:
            raise SpeakerError("no speech frames to make a speaker profile from; enrol at least one utterance")
        std = np.sqrt(self._m2 / self.count)
        return SpeakerProfile(encoder_sha256=encoder_sha256, layer=layer, mean=self._mean.astype(np.float32),
                              std=std.astype(np.float32), frames=self.count, seconds=self.seconds,
                              utterances=self.utterances, kind=kind)


class RunningSpeaker:
    """A per-session speaker estimate for a stream: each utterance's frames are added after it is scored, and
    once ``min_seconds`` of speech have been heard the statistics so far serve as the speaker's profile.

    Before that, predictions use the speaker-independent head (``current()`` is ``None``). One object per
    session (a microphone, a WebSocket connection): it assumes one speaker.
    """

    def __init__(self, min_seconds: float = 20.0) -> None:
        if not min_seconds >= 0:
            raise SpeakerError(f"min_seconds must be >= 0, got {min_seconds}")
        self.min_seconds = min_seconds
        self._stats: SpeakerStats | None = None
        self._key: tuple[str, int] | None = None

    @property
    def seconds(self) -> float:
        return self._stats.seconds if self._stats is not None else 0.0

    def current(self) -> SpeakerProfile | None:
        if self._stats is None or self._key is None or self._stats.seconds < self.min_seconds:
            return None
        return self._stats.profile(*self._key)

    def observe(self, frames: np.ndarray, seconds: float, encoder_sha256: str, layer: int) -> None:
        """Add one utterance's frames ``(n, dim)`` of ``layer`` of the encoder ``encoder_sha256``."""
        if self._stats is None:
            self._stats, self._key = SpeakerStats(frames.shape[-1]), (encoder_sha256, layer)
        elif self._key != (encoder_sha256, layer):
            raise SpeakerError("a running speaker estimate serves one encoder; start a new one for another bundle")
        self._stats.add(frames, seconds=seconds)


MIN_PROFILE_S = {"speaker": 30.0, "site": 60.0}
"""Speech below which a profile is warned of: speaker profiles from 5 and 10 s scored below no profile at all,
from 30 s up above it (``benchmarks/results/enrolment.json``); site profiles were measured from one minute up
(``benchmarks/results/generalisation.json``, ``site_profile``)."""


def profile_warning(profile: SpeakerProfile) -> str | None:
    """What to tell the maker of a profile from too little speech (:data:`MIN_PROFILE_S`), or ``None``."""
    least = MIN_PROFILE_S.get(profile.kind, MIN_PROFILE_S["speaker"])
    if profile.seconds >= least:
        return None
    if profile.kind == "site":
        return (f"only {profile.seconds:.0f} s of speech: site profiles were measured from {least:.0f} s up "
                "(benchmarks/results/generalisation.json); record more of the site")
    return (f"only {profile.seconds:.0f} s of speech: profiles from under {least:.0f} s scored below no profile at "
            "all when measured (benchmarks/results/enrolment.json); record more of the speaker, or predict "
            "without --speaker")
