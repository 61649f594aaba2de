"""Runtime options: a frozen dataclass validated on creation, with named presets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuntimeOptions:
    """How the runtime executes a bundle.

    Attributes:
        threads: Intra-op threads per graph; 0 lets ONNX Runtime choose (all cores).
        providers: ONNX Runtime execution providers in order of preference.
        max_audio_s: Longest audio accepted by one call; longer input raises ``AudioError``.
        max_text_tokens: Text longer than this many tokens is truncated (with a warning).
        verify_hashes: Check every bundle file's sha256 on load (costs ~1 s per 400 MB).
    """

    threads: int = 0
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    max_audio_s: float = 60.0
    max_text_tokens: int = 128
    verify_hashes: bool = True

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0 = automatic), got {self.threads}")
        if not self.providers:
            raise ValueError("providers must name at least one execution provider")
        if isinstance(self.providers, str):
            raise ValueError("providers must be a tuple of names, not a single string")
        if not self.max_audio_s > 0:
            raise ValueError(f"max_audio_s must be positive, got {self.max_audio_s}")
        if self.max_text_tokens < 2:
            raise ValueError(f"max_text_tokens must be >= 2, got {self.max_text_tokens}")

    @classmethod
    def cpu(cls, threads: int = 0) -> RuntimeOptions:
        """ONNX Runtime on the CPU (the default everywhere)."""
        return cls(threads=threads, providers=("CPUExecutionProvider",))

    @classmethod
    def cuda(cls) -> RuntimeOptions:
        """ONNX Runtime's CUDA provider with CPU fallback (needs onnxruntime-gpu; untested here)."""
        return cls(providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
