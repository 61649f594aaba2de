"""The torch modules that become the bundle's ONNX graphs, and their specs."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgeser.errors import InputError
from edgeser.model.specs import GraphSpec, TensorSpec
from edgeser_export.model import FusionModel
from edgeser_export.sources import SpeechSource, TextSource


class SpeechGraph(nn.Module):
    """CTC logits and selected hidden states from one encoder pass."""

    def __init__(self, model: nn.Module, layers: tuple[int, ...]) -> None:
        super().__init__()
        self.model = model
        self.layers = layers

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(input_values, attention_mask=attention_mask, output_hidden_states=True, return_dict=True)
        hidden = torch.stack([out.hidden_states[i] for i in self.layers], dim=1)
        return out.logits, hidden


class TextGraph(nn.Module):
    """Token embeddings (the last hidden state) of a BERT-style encoder."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **kwargs)
        hidden: torch.Tensor = out.last_hidden_state
        return hidden


def speech_graph(source: SpeechSource, layers: tuple[int, ...]) -> nn.Module:
    """The module exported as ``speech.onnx``: raw audio in, (CTC logits and) the chosen hidden states out."""
    if source.architecture == "whisper":
        from edgeser_export.whisper import WhisperSpeechGraph

        return WhisperSpeechGraph(source.model, layers).eval()
    return SpeechGraph(source.model, layers).eval()


def speech_spec(source: SpeechSource, layers: tuple[int, ...]) -> GraphSpec:
    inputs = [TensorSpec("input_values", "float32", ("batch", "samples"))]
    if source.uses_attention_mask:
        inputs.append(TensorSpec("attention_mask", "int64", ("batch", "samples")))
    hidden = TensorSpec("hidden_states", "float32", ("batch", len(layers), "frames", source.hidden_size))
    logits = (TensorSpec("logits", "float32", ("batch", "frames", len(source.vocab.tokens))),) if source.vocab else ()
    return GraphSpec(inputs=tuple(inputs), outputs=(*logits, hidden))


def text_spec(source: TextSource) -> GraphSpec:
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if source.uses_token_type_ids else [])
    return GraphSpec(
        inputs=tuple(TensorSpec(n, "int64", ("batch", "tokens")) for n in names),
        outputs=(TensorSpec("last_hidden_state", "float32",
                            ("batch", "tokens", int(source.model.config.hidden_size))),))


def parse_layers(layers: str, num_layers: int) -> tuple[int, ...]:
    """``"last"``, ``"all"`` or comma-separated indices into the hidden states (0 = feature projection)."""
    if layers == "last":
        return (num_layers,)
    if layers == "all":
        return tuple(range(num_layers + 1))
    try:
        chosen = tuple(int(x) for x in layers.split(","))
    except ValueError as e:
        raise InputError(f"layers must be 'last', 'all' or comma-separated integers, got {layers!r}") from e
    bad = [i for i in chosen if not 0 <= i <= num_layers]
    if bad or len(set(chosen)) != len(chosen):
        raise InputError(f"layers must be distinct indices in 0..{num_layers} (0 = feature projection), got {layers!r}")
    return chosen


class FusionGraph(nn.Module):
    """A :class:`~edgeser_export.model.FusionModel` with positional inputs and tuple outputs, for ONNX export."""

    def __init__(self, model: FusionModel) -> None:
        super().__init__()
        self.model = model
        self.names = model.input_names()

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(**dict(zip(self.names, inputs, strict=True)))
        return tuple(out.values())


def fusion_spec(model: FusionModel) -> GraphSpec:
    """Inputs: per level ``(batch, <level>s, speech_dim)`` and its bool mask, then text; outputs: log-probs."""
    c = model.config
    inputs: list[TensorSpec] = []
    for lv in c.levels:
        inputs += [TensorSpec(lv, "float32", ("batch", f"{lv}s", c.speech_dim)),
                   TensorSpec(f"{lv}_mask", "bool", ("batch", f"{lv}s"))]
    if c.use_text:
        inputs += [TensorSpec("text", "float32", ("batch", "tokens", c.text_dim)),
                   TensorSpec("text_mask", "bool", ("batch", "tokens"))]
    branches = ["scores"] + (["early_scores"] if c.early else []) + (
        ["speech_scores"] if c.late and c.levels else []) + (
        ["text_scores"] if c.late and c.use_text else [])  # output names never repeat an input name
    return GraphSpec(inputs=tuple(inputs),
                     outputs=tuple(TensorSpec(b, "float32", ("batch", c.num_classes)) for b in branches))


def fusion_example(model: FusionModel, batch: int, lengths: dict[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Random padded inputs for the fusion graph; row ``i`` has ``length - i mod length`` real positions."""
    c = model.config
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for name in (*c.levels, *(["text"] if c.use_text else [])):
        n = lengths[name]
        feeds[name] = rng.standard_normal((batch, n, c.text_dim if name == "text" else c.speech_dim)).astype(np.float32)
        feeds[f"{name}_mask"] = np.arange(n)[None, :] < (n - np.arange(batch) % n)[:, None]
    return feeds
