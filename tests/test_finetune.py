"""Fine-tuning the top block: padding in a batch changes no utterance's statistics, frame sets slice and join as
they say, and training moves the block towards the labels."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from edgeser_export.finetune import FinetuneConfig, Frames, finetune, voiced_stats  # noqa: E402

pytestmark = pytest.mark.export


def tiny_block() -> torch.nn.Module:
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoderLayer

    config = WhisperConfig(d_model=8, encoder_attention_heads=2, encoder_ffn_dim=16)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    return WhisperEncoderLayer(config).eval()


def frame_set(lengths: list[int], dim: int = 8, seed: int = 0, shift: np.ndarray | None = None) -> Frames:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(sum(lengths), dim)).astype(np.float16)
    if shift is not None:  # per utterance, added to its frames
        x += np.repeat(shift, lengths, axis=0).astype(np.float16)
    voiced = rng.random(sum(lengths)) < 0.7
    return Frames(x, voiced, np.concatenate([[0], np.cumsum(lengths)]))


def stats_alone(block: torch.nn.Module, x: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        y = block(torch.from_numpy(x.astype(np.float32))[None], torch.zeros(1, 1, 1, len(x)))
        y = (y[0] if isinstance(y, tuple) else y)[0].numpy().astype(np.float64)
    keep = y[voiced] if voiced.any() else y
    return np.concatenate([keep.mean(0), keep.std(0)])


def test_an_utterance_has_the_same_statistics_alone_and_padded_in_a_batch() -> None:
    block = tiny_block()
    frames = frame_set([5, 31, 12, 3, 20])
    batched = voiced_stats(block, frames, batch=4)  # batches of unequal lengths: padding in each
    for i in range(len(frames)):
        np.testing.assert_allclose(batched[i], stats_alone(block, *frames.item(i)), atol=2e-5)


def test_frames_take_and_join_keep_each_utterance_whole() -> None:
    a, b = frame_set([4, 6, 2], seed=1), frame_set([3, 5], seed=2)
    joined = Frames.join([a.take(np.array([2, 0])), b])
    assert len(joined) == 4
    for got, want in zip([joined.item(k) for k in range(4)], [a.item(2), a.item(0), b.item(0), b.item(1)],
                         strict=True):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_finetuning_moves_the_block_and_leaves_the_given_one_alone() -> None:
    block = tiny_block()
    before = {k: v.clone() for k, v in block.state_dict().items()}
    labels = np.arange(40) % 2
    shift = np.where(labels[:, None] == 1, 0.8, -0.8) * np.eye(8)[0]  # class 1: dimension 0 raised
    frames = frame_set([int(n) for n in np.random.default_rng(3).integers(4, 12, 40)], shift=shift)
    tuned = finetune(block, frames, labels, np.ones(40), 2, FinetuneConfig(epochs=3, lr=1e-3, batch=8))
    assert all(torch.equal(before[k], v) for k, v in block.state_dict().items())
    moved = max(float((tuned.state_dict()[k] - before[k]).abs().max()) for k in before)
    assert moved > 1e-4
    assert not any(torch.isnan(v).any() for v in tuned.state_dict().values())


def test_attentive_pooling_with_equal_scores_is_the_plain_statistics_of_voiced_frames() -> None:
    from edgeser_export.attentive import AttentiveHead

    frames = frame_set([7, 3, 11], dim=4, seed=5)
    head = AttentiveHead(np.zeros(4), np.ones(4), classes=4, attention=3).eval()
    torch.nn.init.zeros_(head.score[-1].weight)  # every frame scores the same: the softmax weighs them equally
    from edgeser_export.finetune import padded

    x, _, voiced = padded(frames, np.arange(3))
    pooled = head.pool(x, voiced).detach().numpy()
    for i in range(3):
        xi, vi = frames.item(i)
        keep = xi[vi].astype(np.float64)
        np.testing.assert_allclose(pooled[i], np.concatenate([keep.mean(0), keep.std(0)]), atol=2e-3)  # std floor 1e-3


def test_an_attentive_head_learns_a_separable_toy_problem() -> None:
    from dataclasses import replace

    from edgeser_export.attentive import attentive_log_probs, fit_attentive
    from edgeser_export.multicorpus import HEAD

    labels = np.arange(60) % 2
    shift = np.where(labels[:, None] == 1, 1.5, -1.5) * np.eye(8)[0]
    frames = frame_set([int(n) for n in np.random.default_rng(4).integers(4, 12, 60)], shift=shift)
    spec = replace(HEAD, train=replace(HEAD.train, epochs=20, seeds=2, batch_size=16))
    heads = fit_attentive(frames, labels, np.ones(60), 2, spec)
    log_probs = attentive_log_probs(heads, frames)
    assert np.isfinite(log_probs).all()
    assert (log_probs.argmax(1) == labels).mean() > 0.9
