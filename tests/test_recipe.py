"""The evaluation recipe: config checks before any work, cached features, folds, results and plot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from edgeser.cli import main
from edgeser.errors import DatasetError, EdgeserError
from tests.conftest import SAMPLE

pytest.importorskip("torch")
pytest.importorskip("matplotlib")
pytestmark = pytest.mark.export


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """Eight utterances by four speakers (two per speaker), as a CSV manifest with audio beside it."""
    audio, rate = sf.read(SAMPLE)
    rows = ["path,speaker,label,transcript"]
    for i in range(8):
        path = tmp_path / "audio" / f"u{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, audio * (0.5 + 0.1 * i), rate)
        rows.append(f"audio/u{i}.wav,spk{i // 2},{['neutral', 'happy', 'angry', 'sad'][i % 4]},"
                    "Kids are talking by the door.")
    (tmp_path / "corpus.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "corpus.csv"


def write_config(tmp_path: Path, corpus: Path, bundle: Path, **model: object) -> Path:
    model_lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in model.items())
    config = tmp_path / "recipe.toml"
    config.write_text(f'[data]\ndataset = "manifest"\npath = "{corpus}"\nfolds = 2\n\n'
                      f'[model]\nbundle = "{bundle}"\ndim = 16\nheads = 2\n{model_lines}\n\n'
                      f'[train]\nepochs = 2\nbatch_size = 4\n\n[output]\ndir = "{tmp_path / "run"}"\n')
    return config


def test_evaluate_end_to_end(tmp_path: Path, corpus: Path, tiny_bundle: Path) -> None:
    result = CliRunner().invoke(main, ["evaluate", "--config", str(write_config(tmp_path, corpus, tiny_bundle))])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "run" / "results.json").read_text())
    assert data["utterances"] == 8 and data["failures"] == []
    assert len(data["ua_per_fold"]) == 2 and np.array(data["confusion"]).sum() == 8
    assert (tmp_path / "run" / "confusion.png").stat().st_size > 1000
    cached = list((tmp_path / "run" / "cache").rglob("*.npz"))
    assert len(cached) == 8
    with np.load(cached[0]) as z:
        assert set(z.files) == {"frame", "phone", "syllable", "word", "text"} and z["frame"].shape[1] == 32


def test_bad_paths_fail_before_work(tmp_path: Path, corpus: Path, tiny_bundle: Path) -> None:
    from edgeser_export.recipe import RecipeConfig, evaluate

    for data, bundle, message in [(corpus.with_name("missing.csv"), tiny_bundle, "not found"),
                                  (corpus, tmp_path / "no-bundle", "no bundle folder")]:
        with pytest.raises(EdgeserError, match=message):
            evaluate(RecipeConfig.from_file(write_config(tmp_path, data, bundle)))
        assert not (tmp_path / "run").exists()


def test_config_errors(tmp_path: Path, corpus: Path, tiny_bundle: Path) -> None:
    from edgeser_export.recipe import ConfigError, RecipeConfig, check

    bad = write_config(tmp_path, corpus, tiny_bundle, levels=["frames"])
    with pytest.raises(ConfigError, match="subset"):
        check(RecipeConfig.from_file(bad))
    (tmp_path / "typo.toml").write_text('[data]\ndataset = "manifest"\npath = "x"\n[model]\nbundel = "b"\n')
    with pytest.raises(ConfigError, match=r"unknown \[model\] key 'bundel'.*missing 'bundle'"):
        RecipeConfig.from_file(tmp_path / "typo.toml")
    (next((tmp_path / "audio").iterdir())).unlink()
    with pytest.raises(DatasetError, match="1 audio files of corpus are missing"):
        check(RecipeConfig.from_file(write_config(tmp_path, corpus, tiny_bundle)))
    assert not (tmp_path / "run").exists()


def test_text_only_needs_no_audio(tmp_path: Path, corpus: Path, tiny_bundle: Path) -> None:
    shutil.rmtree(tmp_path / "audio")
    config = write_config(tmp_path, corpus, tiny_bundle, levels=[], early=False)
    result = CliRunner().invoke(main, ["evaluate", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "results.json").read_text())["utterances"] == 8


def test_train_then_predict(tmp_path: Path, corpus: Path, tiny_bundle: Path) -> None:
    """A trained bundle predicts from audio alone; its scores equal the torch model's on the training features."""
    import torch

    from edgeser import EmotionRecognizer
    from edgeser_export.features import utterance_features
    from edgeser_export.pipeline import add_fusion
    from edgeser_export.recipe import RecipeConfig, check
    from edgeser_export.train import collate, train

    config = RecipeConfig.from_file(write_config(tmp_path, corpus, tiny_bundle))
    dataset, rec, fusion = check(config)
    items = [utterance_features(rec, u, config.levels, True) for u in dataset.utterances]
    model, _ = train(fusion, items, dataset.label_ids(), config.train)
    add_fusion(tiny_bundle, model, tmp_path / "trained", layer=2, provenance={"dataset": "corpus"},
               exporter="torchscript")
    trained = EmotionRecognizer.from_bundle(tmp_path / "trained")
    assert trained.bundle.manifest.fusion is not None
    assert trained.bundle.manifest.fusion.provenance["parity"]["max_abs_diff"]["scores"] < 1e-4
    utt = dataset.utterances[3]
    result = trained.predict(utt.path, utt.transcript)
    with torch.no_grad():
        ref = model(**collate([items[3]], [*config.levels, "text"]))["scores"][0].exp().numpy()
    np.testing.assert_allclose(list(result.probabilities.values()), ref, atol=1e-4)
    assert result.label in dataset.labels and [w.label for w in result.segmentation.words][:2] == ["kids", "are"]
    assert set(result.branches) == {"early", "speech", "text"} and result.timings.fusion_s is not None

    cli = CliRunner().invoke(main, ["predict", str(utt.path), "--bundle", str(tmp_path / "trained"), "--text",
                                    utt.transcript, "--json"])
    assert cli.exit_code == 0, cli.output
    line = json.loads(cli.output.strip().splitlines()[-1])
    assert line["path"] == str(utt.path) and set(line["probabilities"]) == set(dataset.labels)
    assert {"words", "syllables", "phones", "timings", "branches"} <= set(line)


def test_train_command_and_predict_errors(tmp_path: Path, corpus: Path, tiny_bundle: Path) -> None:
    result = CliRunner().invoke(main, ["train", "--config", str(write_config(tmp_path, corpus, tiny_bundle)),
                                       "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "b" / "bundle.json").read_text())["fusion"]["levels"] == [
        "frame", "phone", "syllable", "word"]
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "b")])
    assert result.exit_code == 0 and "trained on corpus (8 utts)" in result.output
    result = CliRunner().invoke(main, ["predict", str(SAMPLE), "--bundle", str(tiny_bundle)])
    assert result.exit_code == 1 and "no emotion head" in result.output
    result = CliRunner().invoke(main, ["predict", str(SAMPLE), str(SAMPLE), "--bundle", str(tmp_path / "b"),
                                       "--text", "x"])
    assert result.exit_code == 2 and "--transcripts" in result.output


def test_ablation_table(tmp_path: Path, corpus: Path, tiny_bundle: Path) -> None:
    from edgeser_export.recipe import ABLATION

    result = CliRunner().invoke(main, ["ablate", "--config", str(write_config(tmp_path, corpus, tiny_bundle))])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("| ") and "UA" not in line]
    assert [r.split(" | ")[0].lstrip("| ") for r in rows] == [name for name, _ in ABLATION]
    assert (tmp_path / "run" / "ablation.md").is_file()
    data = json.loads((tmp_path / "run" / "ablation.json").read_text())
    assert all(len(r["ua_per_fold"]) == 2 for r in data["rows"])
    assert len(list((tmp_path / "run" / "cache").rglob("*.npz"))) == 8  # features computed once for all variants


def test_train_with_several_seeds_writes_one_averaged_head(tmp_path: Path, corpus: Path, tiny_bundle: Path) -> None:
    from edgeser import EmotionRecognizer
    from edgeser_export.recipe import ConfigError, RecipeConfig

    config = write_config(tmp_path, corpus, tiny_bundle, levels=["frame"], early=False)
    config.write_text(config.read_text().replace("[train]\n", "[train]\nseeds = 2\n"))
    result = CliRunner().invoke(main, ["train", "--config", str(config), "--out", str(tmp_path / "trained")])
    assert result.exit_code == 0, result.output
    trained = EmotionRecognizer.from_bundle(tmp_path / "trained")
    fusion = trained.bundle.manifest.fusion
    assert fusion is not None and fusion.provenance["train"]["seeds"] == 2
    probs = trained.predict(SAMPLE, "Kids are talking by the door.").probabilities
    assert abs(sum(probs.values()) - 1) < 1e-4
    config.write_text(config.read_text().replace("seeds = 2", "seeds = 0"))
    with pytest.raises(ConfigError, match=r"\[train\] seeds"):
        RecipeConfig.from_file(config)


@pytest.mark.integration
def test_features_on_ray_are_the_sequential_ones(tmp_path: Path, corpus: Path, tiny_bundle: Path) -> None:
    """edgeser evaluate --ray: two feature actors on a local Ray instance write the same features (every array,
    bit for bit) and the same failures (an unreadable file) as this process, and the command's results equal
    the run without Ray."""
    ray = pytest.importorskip("ray", reason="Ray runs need edgeser[ray]")
    from edgeser import EmotionRecognizer
    from edgeser.datasets import open_dataset
    from edgeser_export.features import compute

    (corpus.parent / "audio" / "u7.wav").write_text("not audio")
    dataset = open_dataset(corpus)
    rec = EmotionRecognizer.from_bundle(tiny_bundle)
    levels = ("frame", "phone", "syllable", "word")
    here = compute(rec, dataset, levels, True, tmp_path / "here")
    config = write_config(tmp_path, corpus, tiny_bundle)
    try:
        there = compute(rec, dataset, levels, True, tmp_path / "there", ray_address="local", workers=2)
        cli = CliRunner().invoke(main, ["evaluate", "--config", str(config), "--ray", "--workers", "2"])
    finally:
        ray.shutdown()
    assert there.failures == here.failures and len(here.failures) == 1 and "u7" in here.failures[0][0]
    assert there.indices.tolist() == here.indices.tolist() == list(range(7))
    for a, b in zip(here.items, there.items, strict=True):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert cli.exit_code == 0, cli.output
    on_ray = json.loads((tmp_path / "run" / "results.json").read_text())
    shutil.rmtree(tmp_path / "run")
    assert CliRunner().invoke(main, ["evaluate", "--config", str(config)]).exit_code == 0
    alone = json.loads((tmp_path / "run" / "results.json").read_text())
    assert on_ray["ua_per_fold"] == alone["ua_per_fold"] and on_ray["confusion"] == alone["confusion"]
    assert on_ray["failures"] == alone["failures"] and len(alone["failures"]) == 1


def test_ray_options_without_ray_are_refused(tmp_path: Path, corpus: Path, tiny_bundle: Path) -> None:
    config = write_config(tmp_path, corpus, tiny_bundle)
    for extra in (["--workers", "2"], ["--ray-address", "auto"]):
        result = CliRunner().invoke(main, ["evaluate", "--config", str(config), *extra])
        assert result.exit_code == 2 and "are for --ray" in result.output
    result = CliRunner().invoke(main, ["ablate", "--config", str(config), "--ray", "--workers", "0"])
    assert result.exit_code == 2 and "at least 1" in result.output
