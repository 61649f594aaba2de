"""edgeser: multimodal (speech + text) emotion recognition for the edge.

The runtime needs numpy and ONNX Runtime only; it never imports torch.
"""

from edgeser.audio import load_audio
from edgeser.bundle import Bundle
from edgeser.errors import (
    AlignmentError,
    AudioError,
    BackendUnavailableError,
    BundleError,
    EdgeserError,
    NoSpeechError,
    ParityError,
    TextError,
)
from edgeser.options import RuntimeOptions
from edgeser.recognizer import EmotionRecognizer
from edgeser.results import EncoderOutput, TextOutput, Timings

__version__ = "0.1.0"

__all__ = [
    "AlignmentError",
    "AudioError",
    "BackendUnavailableError",
    "Bundle",
    "BundleError",
    "EdgeserError",
    "EmotionRecognizer",
    "EncoderOutput",
    "NoSpeechError",
    "ParityError",
    "RuntimeOptions",
    "TextError",
    "TextOutput",
    "Timings",
    "__version__",
    "load_audio",
]
