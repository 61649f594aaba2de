"""RuntimeOptions validation and presets; recognizer behaviour that needs no model."""

from __future__ import annotations

import dataclasses

import pytest

from edgeser import RuntimeOptions
from edgeser._optional import require
from edgeser.errors import BackendUnavailableError


@pytest.mark.parametrize("kwargs,message", [
    ({"threads": -1}, "threads"), ({"providers": ()}, "at least one"), ({"providers": "CPUExecutionProvider"}, "tuple"),
    ({"max_audio_s": 0}, "max_audio_s"), ({"max_text_tokens": 1}, "max_text_tokens"),
])
def test_invalid_options(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        RuntimeOptions(**kwargs)


def test_presets_and_frozen() -> None:
    assert RuntimeOptions.cpu(threads=2).threads == 2
    assert RuntimeOptions.cuda().providers[0] == "CUDAExecutionProvider"
    with pytest.raises(dataclasses.FrozenInstanceError):
        RuntimeOptions().threads = 3  # type: ignore[misc]


def test_require_names_the_extra() -> None:
    with pytest.raises(BackendUnavailableError, match=r'pip install "edgeser\[trt\]"'):
        require("tensorrt_that_is_not_here", "trt", "TensorRT engines")


def test_unavailable_provider_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from edgeser.backends.ort import OrtBackend

    with pytest.raises(BackendUnavailableError, match="not \\['NoSuchExecutionProvider'\\]"):
        OrtBackend(tmp_path / "x.onnx", RuntimeOptions(providers=("NoSuchExecutionProvider",)))


def test_bad_settings_are_input_errors_that_are_also_value_errors() -> None:
    from edgeser import EdgeserError, InputError, RuntimeOptions

    with pytest.raises(InputError, match="threads must be >= 0") as caught:
        RuntimeOptions(threads=-1)
    assert isinstance(caught.value, EdgeserError) and isinstance(caught.value, ValueError)
