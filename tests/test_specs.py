"""The frame formula and graph-spec input checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeser.errors import BundleError
from edgeser.model.specs import FrameFormula, GraphSpec, TensorSpec

BASE = FrameFormula((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2), 16000)


def count_windows(n: int, kernels: tuple[int, ...], strides: tuple[int, ...]) -> int:
    """Independent reference: slide each window explicitly, layer by layer."""
    for k, s in zip(kernels, strides, strict=True):
        n = len([start for start in range(0, n) if start + k <= n and start % s == 0])
    return n


def test_wav2vec2_base_numbers() -> None:
    assert BASE.hop_samples == 320 and BASE.receptive_field == 400 and BASE.hop_s == 0.02
    assert BASE.num_frames(16000) == 49  # one second of audio gives 49 frames in wav2vec2-base
    assert BASE.num_frames(399) == 0 and BASE.num_frames(400) == 1
    assert BASE.frame_end_s(0) == pytest.approx(0.025)


@given(n=st.integers(0, 5000), layers=st.lists(st.tuples(st.integers(1, 6), st.integers(1, 4)), min_size=1, max_size=4))
def test_formula_matches_explicit_window_count(n: int, layers: list[tuple[int, int]]) -> None:
    kernels, strides = tuple(k for k, _ in layers), tuple(s for _, s in layers)
    f = FrameFormula(kernels, strides, 16000)
    assert int(f.num_frames(n)) == count_windows(n, kernels, strides)
    assert int(f.num_frames(f.receptive_field)) == 1
    assert int(f.num_frames(f.receptive_field - 1)) == 0


def test_formula_is_vectorised() -> None:
    np.testing.assert_array_equal(BASE.num_frames(np.array([0, 400, 16000, 64000])), [0, 1, 49, 199])


def test_round_trip_rejects_inconsistent_derived_numbers() -> None:
    d = BASE.to_dict()
    assert FrameFormula.from_dict(d) == BASE
    with pytest.raises(BundleError, match="hop_samples is 160"):
        FrameFormula.from_dict({**d, "hop_samples": 160})
    with pytest.raises(BundleError, match="one stride per kernel"):
        FrameFormula((10, 3), (5,), 16000)


SPEC = GraphSpec(inputs=(TensorSpec("input_values", "float32", ("batch", "samples")),
                         TensorSpec("attention_mask", "int64", ("batch", "samples"))),
                 outputs=(TensorSpec("logits", "float32", ("batch", "frames", 32)),))


def test_dynamic_axes_from_spec() -> None:
    assert SPEC.dynamic_axes() == {"input_values": {0: "batch", 1: "samples"},
                                   "attention_mask": {0: "batch", 1: "samples"}, "logits": {0: "batch", 1: "frames"}}
    assert GraphSpec.from_dict(SPEC.to_dict()) == SPEC


@pytest.mark.parametrize("feeds,message", [
    ({"input_values": np.zeros((1, 9), np.float32)}, "missing"),
    ({"input_values": np.zeros((1, 9), np.float64), "attention_mask": np.ones((1, 9), np.int64)}, "float32"),
    ({"input_values": np.zeros(9, np.float32), "attention_mask": np.ones((1, 9), np.int64)}, "dims"),
    ({"input_values": np.zeros((1, 9), np.float32), "attention_mask": np.ones((1, 8), np.int64)}, "samples"),
])
def test_check_feeds_rejects(feeds: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SPEC.check_feeds(feeds)


def test_check_feeds_accepts_consistent_sizes() -> None:
    SPEC.check_feeds({"input_values": np.zeros((2, 9), np.float32), "attention_mask": np.ones((2, 9), np.int64)})
