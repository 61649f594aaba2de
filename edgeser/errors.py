"""The exceptions edgeser raises. Every message carries the numbers and the fix."""

from __future__ import annotations


class EdgeserError(Exception):
    """Base class of every error edgeser raises on purpose."""


class InputError(EdgeserError, ValueError):
    """An argument or setting outside what it may be (a negative count, an unknown mode, a tensor of the wrong
    shape). Also a ``ValueError``, as such errors are in Python."""


class BackendError(EdgeserError, RuntimeError):
    """An inference backend that failed while running (a TensorRT or CUDA call that returned an error)."""


class BundleError(EdgeserError):
    """A bundle is missing, incomplete, tampered with, or of an unsupported version."""


class AudioError(EdgeserError):
    """Audio that cannot be read or is unusable (empty, silent, NaN, too long, ...)."""


class NoSpeechError(AudioError):
    """Audio in which the voice activity detector finds no speech (noise, music, silence)."""


class TextError(EdgeserError):
    """Text that cannot be encoded (empty, nothing left after tokenization, ...)."""


class DatasetError(EdgeserError):
    """A dataset folder or manifest that is missing, malformed, or has labels outside the label set."""


class AlignmentError(EdgeserError):
    """A transcript that cannot be aligned to the audio."""


class BackendUnavailableError(EdgeserError):
    """An inference backend or execution provider that is not installed or not usable here."""


class ParityError(EdgeserError):
    """An exported graph whose outputs differ from its source beyond the stated tolerance."""
