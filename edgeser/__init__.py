"""edgeser: multimodal (speech + text) emotion recognition for the edge.

The runtime needs numpy and ONNX Runtime only; it never imports torch.
"""

from edgeser.alignment.segmenter import Segment, Segmentation
from edgeser.audio import load_audio
from edgeser.errors import (
    AlignmentError,
    AudioError,
    BackendError,
    BackendUnavailableError,
    BundleError,
    DatasetError,
    EdgeserError,
    InputError,
    NoSpeechError,
    ParityError,
    TextError,
)
from edgeser.model.bundle import Bundle
from edgeser.options import RuntimeOptions, SegmentOptions
from edgeser.recognizer import EmotionRecognizer
from edgeser.results import EncoderOutput, Prediction, TextOutput, Timings
from edgeser.streaming import AudioStream, StreamOptions, StreamResult

__version__ = "0.1.0"

__all__ = [
    "AlignmentError",
    "AudioError",
    "AudioStream",
    "BackendError",
    "BackendUnavailableError",
    "Bundle",
    "BundleError",
    "DatasetError",
    "EdgeserError",
    "EmotionRecognizer",
    "EncoderOutput",
    "InputError",
    "NoSpeechError",
    "ParityError",
    "Prediction",
    "RuntimeOptions",
    "Segment",
    "SegmentOptions",
    "Segmentation",
    "StreamOptions",
    "StreamResult",
    "TextError",
    "TextOutput",
    "Timings",
    "__version__",
    "load_audio",
]
