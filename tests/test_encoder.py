"""Groundwork for the compact speech encoder: teacher targets, the multi-task loss, and export of the result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("hama", reason="the CTC teacher is hama's phoneme recognizer (edgeser[align])")

from edgeser import EmotionRecognizer  # noqa: E402
from edgeser.alignment.ctc.hama import HamaAligner  # noqa: E402
from edgeser.audio import load_audio  # noqa: E402
from edgeser_export.encoder import (  # noqa: E402
    VOCAB,
    WORD_BOUNDARY,
    SpeechEmotionModel,
    compact_config,
    multitask_loss,
    save,
    teacher_targets,
)
from edgeser_export.pipeline import export_bundle  # noqa: E402
from edgeser_export.sources import load_speech  # noqa: E402
from tests.conftest import SAMPLE, ravdess_files  # noqa: E402

pytestmark = pytest.mark.export


def test_teacher_targets_spell_the_sentence() -> None:
    target = teacher_targets(HamaAligner(), load_audio(SAMPLE))
    words = "".join(VOCAB[t] if t != WORD_BOUNDARY else " " for t in target).split()
    assert words == ["kɪd", "ɛɹ", "tɔkɪn", "baɪ", "ði", "dɔɹ"]  # hama's greedy reading of the espeak sample
    assert target[0] != WORD_BOUNDARY != target[-1]


def test_training_forward_always_has_hidden_states() -> None:
    config = compact_config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
                            conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    assert config.layerdrop == 0.0
    model = SpeechEmotionModel(config, num_emotions=4).train()
    for _ in range(20):  # with LayerDrop, some of these steps would drop both layers and lose the hidden states
        _, emotion_logits, _ = model(torch.randn(2, 8000), torch.ones(2, 8000, dtype=torch.long))
        assert emotion_logits.shape == (2, 4)


def test_multitask_training_learns_and_exports(tmp_path: Path) -> None:
    teacher = HamaAligner()
    waves = [load_audio(f) for f in [SAMPLE, *ravdess_files(2)]]
    targets = [teacher_targets(teacher, w) for w in waves]
    emotions = [-1, 0, 1]  # the synthetic sample has no emotion label
    torch.manual_seed(0)
    config = compact_config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
                            conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    model = SpeechEmotionModel(config, num_emotions=4)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        loss, _ = multitask_loss(model, waves, targets, emotions)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all() and np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    save(model, tmp_path / "encoder", ["neutral", "happy", "angry", "sad"])
    source = load_speech(tmp_path / "encoder")
    assert source.vocab.kind == "phonemes" and source.vocab.tokens[source.vocab.blank_id] == "<blank>"
    assert source.vocab.word_delimiter == "<wb>" and source.uses_attention_mask
    export_bundle(tmp_path / "bundle", speech=source, exporter="torchscript")
    seg = EmotionRecognizer.from_bundle(tmp_path / "bundle").segment(SAMPLE, "Kids are talking by the door.")
    assert seg.phone_timing == "aligned" and [w.label for w in seg.words][-1] == "door"
