"""Graph input/output specs and the CTC frame formula, declared once as data.

The same :class:`GraphSpec` gives the exporter its dynamic axes and dummy inputs, the
runtime its input checks, and (later) TensorRT its optimization profiles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeser.errors import BundleError, InputError

Dim = int | str
"""A tensor dimension: a fixed size, or the name of a dynamic axis such as ``"batch"``."""

_DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32, "bool": np.bool_}


def _is_dim(x: Any) -> bool:
    """An axis of a declared tensor: a fixed size (>= 1) or a name (any size)."""
    return (isinstance(x, str) and bool(x)) or (type(x) is int and x >= 1)


@dataclass(frozen=True)
class TensorSpec:
    """One named graph input or output."""

    name: str
    dtype: str
    dims: tuple[Dim, ...]

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise InputError(f"unsupported dtype {self.dtype!r}; expected one of {sorted(_DTYPES)}")

    @property
    def numpy_dtype(self) -> np.dtype[np.generic]:
        return np.dtype(_DTYPES[self.dtype])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "dims": list(self.dims)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TensorSpec:
        dims = d["dims"]
        if not isinstance(dims, list) or not all(_is_dim(x) for x in dims):
            raise InputError(f"tensor {d.get('name')!r}: dims must be a list of sizes (>= 1) or axis names, got "
                             f"{str(dims)[:60]}")
        return cls(name=str(d["name"]), dtype=str(d["dtype"]), dims=tuple(dims))


@dataclass(frozen=True)
class GraphSpec:
    """The inputs and outputs of one ONNX graph."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """``{tensor: {axis: name}}`` for every named (dynamic) dimension."""
        return {
            t.name: {i: d for i, d in enumerate(t.dims) if isinstance(d, str)}
            for t in (*self.inputs, *self.outputs)
        }

    def check_feeds(self, feeds: Mapping[str, np.ndarray]) -> None:
        """Raise ``ValueError`` unless ``feeds`` match the inputs in names, ranks, dtypes and sizes."""
        missing = set(self.input_names) - set(feeds)
        extra = set(feeds) - set(self.input_names)
        if missing or extra:
            raise InputError(f"graph inputs are {list(self.input_names)}; missing {sorted(missing)}, "
                             f"unexpected {sorted(extra)}")
        bound: dict[str, int] = {}
        for t in self.inputs:
            a = feeds[t.name]
            if a.dtype != t.numpy_dtype:
                raise InputError(f"input {t.name!r} must be {t.dtype}, got {a.dtype}")
            if a.ndim != len(t.dims):
                raise InputError(f"input {t.name!r} must have dims {list(t.dims)}, got shape {a.shape}")
            for axis, (want, got) in enumerate(zip(t.dims, a.shape, strict=True)):
                if isinstance(want, int) and want != got:
                    raise InputError(f"input {t.name!r} axis {axis} must be {want}, got {got}")
                if isinstance(want, str) and bound.setdefault(want, got) != got:
                    raise InputError(f"input {t.name!r} axis {axis} ({want}) is {got}, "
                                     f"but another input has {want}={bound[want]}")

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GraphSpec:
        return cls(inputs=tuple(TensorSpec.from_dict(t) for t in d["inputs"]),
                   outputs=tuple(TensorSpec.from_dict(t) for t in d["outputs"]))


FRAME_LIMIT = 1 << 20
"""The largest kernel, stride, padding or sample rate a frame formula may hold (a bundle's holds hundreds at most;
larger values are a damaged manifest, and would overflow the frame arithmetic)."""


def _padding_pair(p: Any) -> tuple[int, int]:
    """A convolution's ``[left, right]`` padding from bundle.json (a ValueError for anything else)."""
    if isinstance(p, (str, bytes)) or not isinstance(p, Sequence) or len(p) != 2:
        raise ValueError(f"speech.frames.conv_padding entries are [left, right] pairs, got {p!r}")
    return int(p[0]), int(p[1])


@dataclass(frozen=True)
class FrameFormula:
    """How many encoder frames a waveform yields, from the convolutional front end.

    Each window layer maps ``n`` samples (or frames) to ``floor((n + left + right - kernel) / stride) + 1``,
    with ``(left, right)`` its padding (none by default), as in wav2vec 2.0's feature encoder. For
    wav2vec2-base (kernels 10,3,3,3,3,2,2; strides 5,2,2,2,2,2,2; no padding) that is a hop of 320
    samples (20 ms at 16 kHz) and a receptive field of 400 samples (25 ms). Whisper's centred STFT and
    padded convolutions are the same chain with padding (``edgeser_export.whisper.WHISPER_FRAMES``): frame ``t``
    then starts ``offset_samples`` before ``t * hop``.
    """

    conv_kernel: tuple[int, ...]
    conv_stride: tuple[int, ...]
    sample_rate: int
    conv_padding: tuple[tuple[int, int], ...] = ()
    """``(left, right)`` padding per layer; empty means none anywhere."""

    def __post_init__(self) -> None:
        if len(self.conv_kernel) != len(self.conv_stride) or not self.conv_kernel:
            raise BundleError(f"frame formula needs one stride per kernel, got kernels {self.conv_kernel} "
                              f"and strides {self.conv_stride}; re-export the bundle")
        if min(self.conv_kernel) < 1 or min(self.conv_stride) < 1 or self.sample_rate < 1:
            raise BundleError("frame formula kernels, strides and sample rate must be positive; re-export the bundle")
        if self.conv_padding and (len(self.conv_padding) != len(self.conv_kernel)
                                  or any(len(p) != 2 or min(p) < 0 for p in self.conv_padding)):
            raise BundleError(f"frame formula padding must be one non-negative (left, right) pair per kernel, got "
                              f"{self.conv_padding}; re-export the bundle")
        values = [*self.conv_kernel, *self.conv_stride, *(v for p in self.conv_padding for v in p)]
        if max(values) > FRAME_LIMIT or self.sample_rate > FRAME_LIMIT:
            raise BundleError(f"frame formula values must be at most {FRAME_LIMIT:,} (kernels {self.conv_kernel}, "
                              f"strides {self.conv_stride}, padding {self.conv_padding}, rate {self.sample_rate}); "
                              "re-export the bundle")

    @property
    def padding(self) -> tuple[tuple[int, int], ...]:
        return self.conv_padding or ((0, 0),) * len(self.conv_kernel)

    @property
    def offset_samples(self) -> int:
        """Samples by which frame 0's receptive field starts before sample 0 (0 without padding)."""
        offset, jump = 0, 1
        for (left, _), s in zip(self.padding, self.conv_stride, strict=True):
            offset += left * jump
            jump *= s
        return offset

    @property
    def hop_samples(self) -> int:
        """Samples between the starts of consecutive frames (the product of the strides)."""
        return int(np.prod(self.conv_stride))

    @property
    def receptive_field(self) -> int:
        """Samples seen by one frame; also the shortest input that yields a frame."""
        field, jump = 1, 1
        for k, s in zip(self.conv_kernel, self.conv_stride, strict=True):
            field += (k - 1) * jump
            jump *= s
        return field

    @property
    def hop_s(self) -> float:
        return self.hop_samples / self.sample_rate

    def num_frames(self, num_samples: int | np.ndarray) -> np.ndarray:
        """Frames produced for ``num_samples`` (scalar or array); 0 when shorter than one frame."""
        n = np.asarray(num_samples, dtype=np.int64)
        for k, s, (left, right) in zip(self.conv_kernel, self.conv_stride, self.padding, strict=True):
            n = np.where(n + left + right >= k, (n + left + right - k) // s + 1, 0)
        return n

    def frame_start_s(self, frame: int | np.ndarray) -> np.ndarray:
        """Time of the first sample each frame sees (negative for the first frames of a padded front end)."""
        return (np.asarray(frame) * self.hop_samples - self.offset_samples) / self.sample_rate

    def frame_end_s(self, frame: int | np.ndarray) -> np.ndarray:
        """Time just after the last sample each frame sees."""
        return (np.asarray(frame) * self.hop_samples - self.offset_samples + self.receptive_field) / self.sample_rate

    def frame_centre_s(self, frame: int | np.ndarray) -> np.ndarray:
        """Time of the middle of each frame's receptive field."""
        return (np.asarray(frame) * self.hop_samples - self.offset_samples
                + self.receptive_field / 2) / self.sample_rate

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"conv_kernel": list(self.conv_kernel), "conv_stride": list(self.conv_stride),
                             "sample_rate": self.sample_rate, "hop_samples": self.hop_samples,
                             "receptive_field": self.receptive_field}
        if self.conv_padding:
            d |= {"conv_padding": [list(p) for p in self.conv_padding], "offset_samples": self.offset_samples}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FrameFormula:
        formula = cls(conv_kernel=tuple(int(k) for k in d["conv_kernel"]),
                      conv_stride=tuple(int(s) for s in d["conv_stride"]),
                      sample_rate=int(d["sample_rate"]),
                      conv_padding=tuple(_padding_pair(p) for p in d.get("conv_padding", ())))
        for key in ("hop_samples", "receptive_field", "offset_samples"):
            if key in d and int(d[key]) != getattr(formula, key):
                raise BundleError(f"bundle.json: speech.frames.{key} is {d[key]} but the kernels and strides "
                                  f"give {getattr(formula, key)}; the file was edited or corrupted, re-export it")
        return formula
