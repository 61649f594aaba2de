"""A compact wav2vec2-architecture speech encoder trained here (groundwork; not trained yet).

No pretrained wav2vec2 weights exist on this machine, so the default model's speech encoder is trained
from scratch, multi-task, so that one encoder pass gives both segmentation and emotion:

- phoneme CTC distilled from ``hama``'s recognizer: its greedy phone sequence (with ``<wb>`` word
  boundaries) is the CTC target, over the 43 English IPA phones of ``edgeser.alignment.phonetics.lexicon``;
- emotion: a classifier on the mean of the last hidden layer, for utterances that have a label.

The result is a ``Wav2Vec2ForCTC`` folder (``save_pretrained`` plus vocabulary and preprocessor files)
that ``edgeser export --speech`` turns into a bundle with a phonemic CTC head.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

from edgeser.alignment.ctc.hama import HamaAligner
from edgeser.alignment.phonetics.lexicon import ARPABET_TO_IPA, EQUIVALENT
from edgeser.model.graph_io import speech_batch

PHONES = tuple(sorted(set(ARPABET_TO_IPA.values()) | {p for group in EQUIVALENT for p in group}))
VOCAB = ("<blank>", "<wb>", "<unk>", *PHONES)
"""CTC vocabulary: blank (id 0, also the pad id), word boundary, unknown, then the English IPA phones."""
BLANK, WORD_BOUNDARY = 0, 1

COMPACT: dict[str, Any] = dict(
    hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024, conv_dim=(256,) * 7,
    num_conv_pos_embeddings=64, num_conv_pos_embedding_groups=8, feat_extract_norm="layer",
    do_stable_layer_norm=True, conv_bias=True, layerdrop=0.0)
"""About 4.8M parameters; the same conv front end (hop 320, receptive field 400) as wav2vec2-base.
LayerDrop is off: it helps deep models, and when it drops every layer of a shallow one, transformers 5
returns no hidden states at all (seen at epoch 5 of a 3-layer run)."""


def compact_config(**overrides: Any) -> Wav2Vec2Config:
    return Wav2Vec2Config(**{**COMPACT, **overrides}, vocab_size=len(VOCAB), pad_token_id=BLANK,
                          ctc_loss_reduction="mean", ctc_zero_infinity=True)


def teacher_targets(teacher: HamaAligner, wave: np.ndarray) -> list[int]:
    """hama's greedy phone sequence for 16 kHz ``wave``, as ids of :data:`VOCAB` (word boundaries kept,
    never doubled or at the ends; phones outside the English set are dropped)."""
    em = teacher.emissions(wave)
    index = {t: i for i, t in enumerate(VOCAB)}
    out: list[int] = []
    previous = -1
    for token_id in em.log_probs.argmax(axis=1):
        if token_id != previous and token_id != em.vocab.blank_id:
            token = em.vocab.tokens[token_id]
            mapped = WORD_BOUNDARY if token == em.vocab.word_delimiter else index.get(token)
            if mapped is not None and not (mapped == WORD_BOUNDARY and (not out or out[-1] == WORD_BOUNDARY)):
                out.append(mapped)
        previous = token_id
    while out and out[-1] == WORD_BOUNDARY:
        out.pop()
    return out


class SpeechEmotionModel(nn.Module):
    """``Wav2Vec2ForCTC`` plus an emotion classifier on its mean-pooled last hidden layer."""

    def __init__(self, config: Wav2Vec2Config, num_emotions: int) -> None:
        super().__init__()
        self.ctc = Wav2Vec2ForCTC(config)
        self.emotion = nn.Linear(config.hidden_size, num_emotions)

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, emotion, frames, _ = self.outputs(input_values, attention_mask)
        return logits, emotion, frames

    def outputs(self, input_values: torch.Tensor, attention_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """CTC logits, emotion logits, frames per utterance, and the last hidden layer (zero on padding)."""
        out = self.ctc(input_values, attention_mask=attention_mask, output_hidden_states=True)
        frames = self.ctc._get_feat_extract_output_lengths(attention_mask.sum(-1))  # type: ignore[arg-type]
        mask = torch.arange(out.logits.shape[1])[None, :] < frames[:, None]
        hidden = out.hidden_states[-1] * mask[..., None]
        pooled = hidden.sum(1) / frames[:, None].clamp(min=1)
        return out.logits, self.emotion(pooled), frames, hidden


NORMALIZE_INPUT = True
"""The compact encoder hears normalised waveforms; :func:`save` records it (``do_normalize``) so that the exported
bundle's ``normalize_input`` and the runtime's feeds follow the training feeds."""


def batch_inputs(waves: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised, zero-padded waveforms and their attention mask: the runtime's own feed builder
    (:func:`edgeser.model.graph_io.speech_batch`), as tensors."""
    values, _, mask = speech_batch(waves, NORMALIZE_INPUT)
    return torch.from_numpy(values), torch.from_numpy(mask)


def multitask_loss(model: SpeechEmotionModel, waves: Sequence[np.ndarray], targets: Sequence[Sequence[int]],
                   emotions: Sequence[int], emotion_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """CTC on the teacher's phones plus cross-entropy on emotions (``-1`` = unlabelled, left out)."""
    values, mask = batch_inputs(waves)
    logits, emotion_logits, frames = model(values, mask)
    log_probs = torch.log_softmax(logits, dim=-1).transpose(0, 1)
    flat = torch.tensor([t for seq in targets for t in seq], dtype=torch.long)
    lengths = torch.tensor([len(seq) for seq in targets], dtype=torch.long)
    ctc = nn.functional.ctc_loss(log_probs, flat, frames, lengths, blank=BLANK, zero_infinity=True)
    labels = torch.tensor(emotions, dtype=torch.long)
    labelled = labels >= 0
    emotion = (nn.functional.cross_entropy(emotion_logits[labelled], labels[labelled]) if labelled.any()
               else torch.zeros(()))
    loss = ctc + emotion_weight * emotion
    return loss, {"ctc": float(ctc.detach()), "emotion": float(emotion.detach())}


def save(model: SpeechEmotionModel, folder: Path, emotion_labels: Sequence[str]) -> None:
    """A Hugging Face folder that ``edgeser export --speech`` reads (the emotion head is kept beside it)."""
    folder.mkdir(parents=True, exist_ok=True)
    model.ctc.save_pretrained(folder)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}, ensure_ascii=False))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Wav2Vec2PhonemeCTCTokenizer", "word_delimiter_token": "<wb>", "unk_token": "<unk>",
        "pad_token": "<blank>"}))
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "feature_extractor_type": "Wav2Vec2FeatureExtractor", "sampling_rate": 16000, "do_normalize": NORMALIZE_INPUT,
        "return_attention_mask": True, "padding_value": 0.0, "feature_size": 1}))
    torch.save({"state_dict": model.emotion.state_dict(), "labels": list(emotion_labels)}, folder / "emotion_head.pt")
