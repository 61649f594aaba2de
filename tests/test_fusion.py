"""The fused model: shapes and switches, masks, a learnable toy task, and ONNX parity."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeser_export.graphs import FusionGraph, fusion_spec  # noqa: E402
from edgeser_export.model import LEVELS, FusionConfig, FusionModel  # noqa: E402
from edgeser_export.onnx_export import export_onnx  # noqa: E402
from edgeser_export.validate import check_parity  # noqa: E402

pytestmark = pytest.mark.export
SPEECH, TEXT = 12, 10


def batch(config: FusionConfig, b: int = 3, seed: int = 0, lengths: dict[str, int] | None = None,
          dims: tuple[int, int] = (SPEECH, TEXT)) -> dict[str, torch.Tensor]:
    """Random padded inputs; utterance i has ``length - i mod length`` (at least 1) real positions per level."""
    g = torch.Generator().manual_seed(seed)
    lengths = lengths or {"frame": 20, "phone": 9, "syllable": 5, "word": 4, "text": 7}
    out = {}
    for name in (*config.levels, *(["text"] if config.use_text else [])):
        n = lengths[name]
        out[name] = torch.randn(b, n, dims[1] if name == "text" else dims[0], generator=g)
        out[f"{name}_mask"] = torch.arange(n)[None, :] < (n - torch.arange(b) % n)[:, None]
    return out


@pytest.mark.parametrize("kwargs,branches", [
    ({}, {"scores", "early", "speech", "text"}),
    ({"late": False}, {"scores", "early"}),
    ({"early": False}, {"scores", "speech", "text"}),
    ({"early": False, "use_text": False}, {"scores", "speech"}),
    ({"levels": ("frame",), "early": False, "use_text": False}, {"scores", "speech"}),
    ({"levels": ("word", "phone")}, {"scores", "early", "speech", "text"}),
    ({"levels": (), "early": False}, {"scores", "text"}),
])
def test_shapes_for_each_ablation(kwargs: dict, branches: set[str]) -> None:  # type: ignore[type-arg]
    config = FusionConfig(speech_dim=SPEECH, text_dim=TEXT, dim=16, heads=2, **kwargs)
    out = FusionModel(config).eval()(**batch(config))
    assert set(out) == branches
    for v in out.values():
        assert v.shape == (3, 4)
        torch.testing.assert_close(v.exp().sum(-1), torch.ones(3))


def test_invalid_configs() -> None:
    with pytest.raises(ValueError, match="subset"):
        FusionConfig(speech_dim=4, text_dim=4, levels=("frames",))
    with pytest.raises(ValueError, match="text-only head"):
        FusionConfig(speech_dim=4, text_dim=4, levels=())
    with pytest.raises(ValueError, match="early fusion needs text"):
        FusionConfig(speech_dim=4, text_dim=4, use_text=False)
    with pytest.raises(ValueError, match="early fusion, late fusion, or both"):
        FusionConfig(speech_dim=4, text_dim=4, early=False, late=False)
    assert FusionConfig.from_dict(FusionConfig(speech_dim=4, text_dim=4).to_dict()) == FusionConfig(4, 4)


def test_padding_does_not_leak() -> None:
    config = FusionConfig(speech_dim=SPEECH, text_dim=TEXT, dim=16, heads=2)
    model = FusionModel(config).eval()
    x = batch(config)
    y = {k: v.clone() for k, v in x.items()}
    for name in (*LEVELS, "text"):
        y[name][~y[f"{name}_mask"]] = 1e3  # garbage in every padded position
    a, b = model(**x), model(**y)
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_learns_a_toy_task() -> None:
    """Class = which quarter of the speech channels carries a bump in the word embeddings; text is noise."""
    torch.manual_seed(0)
    config = FusionConfig(speech_dim=SPEECH, text_dim=TEXT, dim=32, heads=2, dropout=0.0)
    model = FusionModel(config)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def data(seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        x = batch(config, b=64, seed=seed)
        y = torch.randint(0, 4, (64,), generator=torch.Generator().manual_seed(seed))
        for i, c in enumerate(y.tolist()):
            x["word"][i, :, 3 * c: 3 * c + 3] += 2.0
        return x, y

    for step in range(150):
        x, y = data(step)
        loss = torch.nn.functional.nll_loss(model(**x)["scores"], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, y = data(10_000)
    accuracy = (model(**x)["scores"].argmax(-1) == y).float().mean().item()
    assert accuracy > 0.9


def test_statistics_pooling_is_mean_and_std_of_the_real_positions() -> None:
    from edgeser_export.model.fusion import masked_mean_std

    x = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [99.0, 99.0]]])
    mask = torch.tensor([[True, True, False]])
    torch.testing.assert_close(masked_mean_std(x, mask), torch.tensor([[2.0, 4.0, 1.0, 2.0]]), atol=1e-3, rtol=0)
    config = FusionConfig(speech_dim=SPEECH, text_dim=TEXT, dim=16, heads=2, levels=("frame",), early=False,
                          use_text=False, pooling="mean+std")
    assert FusionConfig.from_dict(config.to_dict()) == config
    assert "pooling" not in FusionConfig(speech_dim=4, text_dim=4).to_dict()  # older configs read the same
    with pytest.raises(ValueError, match="pooling"):
        FusionConfig(speech_dim=4, text_dim=4, pooling="max")


def test_statistics_pooling_z_scores_the_encoder_dimensions_with_the_training_utterances() -> None:
    """``pooling="statistics"`` pools the encoder's own dimensions (no projection, none created), and after
    ``fit_statistics`` the pooled training vectors have mean 0 and std 1 per dimension; padding stays out."""
    config = FusionConfig(speech_dim=SPEECH, text_dim=TEXT, dim=16, heads=2, levels=("frame", "word"),
                          early=False, use_text=False, pooling="statistics")
    model = FusionModel(config)
    assert len(model.speech_proj) == 0 and model.statistics_shift.shape == (2 * 2 * SPEECH,)
    train = [batch(config, b=16, seed=s) for s in range(3)]
    for b in train:
        for lv in config.levels:
            b[lv] = 5.0 + 3.0 * b[lv]  # far from unit scale, as Whisper's frames are
    model.fit_statistics(train)
    z = torch.cat([(model.speech_statistics(b) - model.statistics_shift) / model.statistics_scale for b in train])
    torch.testing.assert_close(z.mean(0), torch.zeros(z.shape[1]), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(0, unbiased=False), torch.ones(z.shape[1]), atol=1e-3, rtol=0)
    expected = torch.cat([torch.cat([train[0][lv][0][train[0][f"{lv}_mask"][0]].mean(0),
                                     train[0][lv][0][train[0][f"{lv}_mask"][0]].std(0, unbiased=False)])
                          for lv in config.levels])
    torch.testing.assert_close(model.speech_statistics(train[0])[0], expected, atol=1e-3, rtol=0)
    model.eval()
    x = train[0]
    y = {k: v.clone() for k, v in x.items()}
    for lv in config.levels:
        y[lv][~y[f"{lv}_mask"]] = 1e3
    torch.testing.assert_close(model(**x)["scores"], model(**y)["scores"])
    early = FusionConfig(speech_dim=SPEECH, text_dim=TEXT, dim=16, heads=2, pooling="statistics")
    out = FusionModel(early).eval()(**batch(early))  # early fusion still projects; its late speech branch does not
    assert set(out) == {"scores", "early", "speech", "text"}


def test_a_residual_mix_starts_as_the_speech_branch_and_learns_its_gates() -> None:
    """``mix="residual"``: with the gates at their initial 0 the fused scores are the speech branch's; one step
    on a task that only the text can solve moves the gates off 0."""
    config = FusionConfig(speech_dim=SPEECH, text_dim=TEXT, dim=16, heads=2, mix="residual", dropout=0.0)
    model = FusionModel(config)
    x = batch(config, b=8)
    out = model(**x)
    torch.testing.assert_close(out["scores"], out["speech"])
    labels = (x["text"][:, 0, 0] > 0).long()
    loss = torch.nn.functional.nll_loss(model(**x)["scores"], labels)
    loss.backward()  # type: ignore[no-untyped-call]
    assert model.mix.shape == (2,) and model.mix.grad is not None and (model.mix.grad != 0).all()
    with pytest.raises(ValueError, match="residual"):
        FusionConfig(speech_dim=4, text_dim=4, late=False, mix="residual")
    assert FusionConfig.from_dict(config.to_dict()) == config and "mix" not in replace(config, mix="softmax").to_dict()


@pytest.mark.parametrize("options", [{"pooling": "mean"}, {"pooling": "mean+std"}, {"pooling": "statistics"},
                                     {"pooling": "statistics", "mix": "residual"}], ids=str)
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_onnx_export_matches_torch(tmp_path: Path, exporter: str, options: dict[str, str]) -> None:
    config = FusionConfig(speech_dim=SPEECH, text_dim=TEXT, dim=16, heads=2, **options)
    model = FusionModel(config)
    if model.needs_statistics:  # fixed z-scores away from the identity, so that the graph must carry them
        model.fit_statistics([{k: v if k.endswith("_mask") else 2.0 + 3.0 * v for k, v in batch(config, 8, 9).items()}])
    with torch.no_grad():  # branch weights (or gates) away from their start, which the graph must then carry
        model.mix.copy_(torch.linspace(-0.5, 1.0, model.mix.numel()))
    graph = FusionGraph(model.eval()).eval()
    spec = fusion_spec(graph.model)

    def feeds(b: int, seed: int, lengths: dict[str, int]) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in batch(config, b, seed, lengths).items()}

    trace = feeds(2, 0, {"frame": 20, "phone": 9, "syllable": 5, "word": 4, "text": 7})
    export_onnx(graph, spec, trace, tmp_path / "fusion.onnx", exporter=exporter)
    cases = [feeds(1, 1, {"frame": 33, "phone": 14, "syllable": 6, "word": 3, "text": 11}),
             feeds(4, 2, {"frame": 7, "phone": 5, "syllable": 4, "word": 4, "text": 5})]
    report = check_parity(graph, tmp_path / "fusion.onnx", spec, cases, tolerance=1e-4)
    assert set(report["max_abs_diff"]) == {"scores", "early_scores", "speech_scores", "text_scores"}


def test_runtime_fusion_equals_torch_on_real_inputs(tmp_path: Path, tiny_bundle: Path) -> None:
    """Real speech through the bundle, real segmentation and pooling, real text embeddings; then the
    exported fusion graph in ONNX Runtime against the torch model on those same arrays."""
    from edgeser import EmotionRecognizer, RuntimeOptions
    from edgeser.alignment.phonetics import Lexicon
    from edgeser.alignment.pooling import level_features
    from edgeser.model.head import EmotionHead
    from tests.conftest import SAMPLE, ravdess_files

    rec = EmotionRecognizer.from_bundle(tiny_bundle)
    files = [SAMPLE, *ravdess_files(2)]
    texts = ["Kids are talking by the door.", "Kids are talking by the door.", "Dogs are sitting by the door."]
    encoded = rec.encode(files)
    lexicon = Lexicon({}, g2p=None)
    segs = [rec.segment(f, t, lexicon=lexicon) for f, t in zip(files, texts, strict=True)]
    speech = level_features(encoded.hidden_states[:, -1], encoded.num_frames, segs, rec.speech.frames, LEVELS)
    text = rec.embed_text(texts)
    config = FusionConfig(speech_dim=speech["frame"][0].shape[-1], text_dim=text.token_embeddings.shape[-1],
                          dim=16, heads=2)
    model = FusionModel(config).eval()
    graph = FusionGraph(model).eval()
    spec = fusion_spec(model)
    sizes = {"frame": 20, "phone": 9, "syllable": 5, "word": 4, "text": 7}
    trace = {k: v.numpy() for k, v in batch(config, 2, 0, sizes, dims=(config.speech_dim, config.text_dim)).items()}
    export_onnx(graph, spec, trace, tmp_path / "fusion.onnx", exporter="torchscript")
    from edgeser.backends import OrtBackend

    head = EmotionHead(OrtBackend(tmp_path / "fusion.onnx", RuntimeOptions()), spec)
    got = head(speech, (text.token_embeddings, text.token_mask))
    inputs = {lv: torch.from_numpy(speech[lv][0]) for lv in LEVELS}
    inputs |= {f"{lv}_mask": torch.from_numpy(speech[lv][1]) for lv in LEVELS}
    inputs |= {"text": torch.from_numpy(text.token_embeddings), "text_mask": torch.from_numpy(text.token_mask)}
    with torch.no_grad():
        ref = model(**inputs)
    assert speech["word"][0].shape[:2] == (3, max(len(s.words) for s in segs))
    np.testing.assert_allclose(got["scores"], ref["scores"].numpy(), atol=1e-4)
    np.testing.assert_allclose(got["early_scores"], ref["early"].numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="missing"):
        head({"frame": speech["frame"]}, (text.token_embeddings, text.token_mask))


def test_an_ensemble_averages_its_members_probabilities_and_exports(tmp_path: Path) -> None:
    from edgeser_export.model import FusionEnsemble

    config = FusionConfig(speech_dim=SPEECH, text_dim=TEXT, dim=16, heads=2, levels=("frame", "word"))
    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        members.append(FusionModel(config).eval())
    ensemble = FusionEnsemble(members).eval()
    inputs = batch(config)
    with torch.no_grad():
        out = ensemble(**inputs)
        each = [m(**inputs) for m in members]
    assert set(out) == set(each[0]) == {"scores", "early", "speech", "text"}
    for k in out:
        mean = torch.stack([torch.exp(o[k]) for o in each]).mean(0)
        assert torch.allclose(torch.exp(out[k]), mean, atol=1e-6)
        assert not torch.allclose(out[k], each[0][k], atol=1e-3)  # the members differ, so averaging shows
    assert torch.allclose(torch.exp(out["scores"]).sum(-1), torch.ones(3), atol=1e-5)
    assert ensemble.input_names() == members[0].input_names()

    graph = FusionGraph(ensemble).eval()  # exports as one fusion graph, as a single model does
    spec = fusion_spec(ensemble)
    trace = {k: v.numpy() for k, v in batch(config, 2, 0).items()}
    export_onnx(graph, spec, trace, tmp_path / "fusion.onnx", exporter="torchscript")
    case = {k: v.numpy() for k, v in batch(config, 4, 3, {"frame": 11, "word": 6, "text": 5}).items()}
    report = check_parity(graph, tmp_path / "fusion.onnx", spec, [case], tolerance=1e-4)
    assert max(report["max_abs_diff"].values()) < 1e-4

    other = FusionModel(FusionConfig(speech_dim=SPEECH, text_dim=TEXT, dim=16, heads=2))
    with pytest.raises(ValueError, match="same FusionConfig"):
        FusionEnsemble([members[0], other])
    with pytest.raises(ValueError, match="at least one"):
        FusionEnsemble([])


def test_train_ensemble_trains_one_member_per_seed() -> None:
    from edgeser_export.model import FusionEnsemble
    from edgeser_export.train import TrainConfig, fit, predict, train_ensemble

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 64)
    items = []
    for c in labels:
        frame = rng.standard_normal((6, SPEECH)).astype(np.float32)
        frame[:, 3 * c: 3 * c + 3] += 2.0  # the class is in which channels carry a bump
        items.append({"frame": frame})
    config = FusionConfig(speech_dim=SPEECH, text_dim=TEXT, dim=16, heads=2, levels=("frame",), early=False,
                          use_text=False)
    ensemble = train_ensemble(config, items, labels, TrainConfig(epochs=15, batch_size=16, lr=3e-3, seeds=2))
    a, b = (dict(m.named_parameters()) for m in ensemble.members)
    assert len(ensemble.members) == 2 and not torch.equal(a["speech_head.1.weight"], b["speech_head.1.weight"])
    assert (predict(ensemble, items).argmax(1) == labels).mean() > 0.9
    kept = train_ensemble(config, items, labels, TrainConfig(epochs=3, batch_size=16, lr=3e-3, seeds=2),
                          valid=(items[:32], labels[:32]))  # each member keeps its best epoch on valid
    assert len(kept.members) == 2
    single = fit(config, items, labels, TrainConfig(epochs=1))
    assert isinstance(single, FusionModel) and isinstance(fit(config, items, labels, TrainConfig(epochs=1, seeds=2)),
                                                          FusionEnsemble)
    with pytest.raises(ValueError, match="seeds"):
        TrainConfig(seeds=0)
