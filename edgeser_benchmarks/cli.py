"""``edgeser bench``: accuracy against latency, size and memory for each bundle variant (joined to the ``edgeser``
command through the ``edgeser.commands`` entry points in pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import click

from edgeser.cli.common import err, one_line_errors, ray_options, ray_target, wrote
from edgeser.options import BACKENDS


@click.command()
@click.option("--bundle", "bundles", multiple=True, help="A variant: PATH, NAME=PATH, or 'default'. Repeat.")
@click.option("--dataset", "dataset_path", type=click.Path(exists=True, path_type=Path), default=None,
              help="Manifest CSV (e.g. ravdess/labels.csv) or corpus folder.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--device-name", default=None, help="Label for this machine in tables (default: host name).")
@click.option("--test-groups", default=None, help="Held-out groups (speakers), comma-separated; default: those the "
                                                  "bundle was not trained on.")
@click.option("--reference", default=None, help="Variant the latency ratios are taken against (default: first).")
@click.option("--repeats", type=int, default=5, show_default=True, help="Timed rounds per clip.")
@click.option("--clips", "clips_per_bucket", type=int, default=3, show_default=True, help="Clips per length bucket.")
@click.option("--batch", type=int, default=8, show_default=True, help="Batch size for the throughput figure.")
@click.option("--threads", type=click.IntRange(0), default=0, show_default=True)
@click.option("--backend", type=click.Choice(list(BACKENDS)), default="cpu",
              show_default=True, help="ONNX Runtime CPU/CUDA/TensorRT provider, or the bundles' TensorRT engines "
                                      "(only cpu has been run by this project).")
@click.option("--no-baselines", is_flag=True, help="Skip eGeMAPS/MiniLM + logistic regression.")
@click.option("--folds", "folds_paths", type=click.Path(exists=True, dir_okay=False, path_type=Path), multiple=True,
              help="A five-fold accuracy result (python -m edgeser_benchmarks.studies.precision_folds or "
                   "student_folds; repeat): variants named in it take its UA/WA and baselines; the others are "
                   "scored on their own held-out speakers.")
@click.option("--peer", "peers", multiple=True, type=click.Choice(["whisper-tiny.en", "whisper-base"]),
              help="Also time CTranslate2's encode() of this packaged Whisper beside the speech encoders (repeat; "
                   "needs ctranslate2 and the model, edgeser[dev,whisper]).")
@ray_options("Recognizer actors for --ray (the accuracy is scored through an edgeser batch job on Ray; "
             "latency is still measured here).")
@click.option("--compare", is_flag=True, help="Instead of measuring: merge the result folders given as arguments "
                                              "(several devices) into --out.")
@click.argument("compare_dirs", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
def bench(bundles: tuple[str, ...], dataset_path: Path | None, out: Path, device_name: str | None,
          test_groups: str | None, reference: str | None, repeats: int, clips_per_bucket: int, batch: int,
          threads: int, backend: str, no_baselines: bool, folds_paths: tuple[Path, ...], peers: tuple[str, ...],
          use_ray: bool, ray_address: str | None, workers: int | None, compare: bool,
          compare_dirs: tuple[Path, ...]) -> None:
    """Accuracy against latency, size and memory for each bundle variant; writes results.json, table.md and
    pareto.png to --out."""
    from edgeser_benchmarks import suite

    address, workers = ray_target(use_ray, ray_address, workers)
    if compare_dirs and not compare:
        raise click.UsageError("result folders are arguments of --compare: edgeser bench --compare DIR1 DIR2 --out DIR")
    with one_line_errors():
        if compare:
            if len(compare_dirs) < 1:
                raise click.UsageError("--compare needs at least one result folder")
            result = suite.compare(compare_dirs)
        else:
            if not bundles or dataset_path is None:
                raise click.UsageError("give --bundle (one or more) and --dataset, or --compare DIR1 DIR2 ...")
            from edgeser import system
            from edgeser.datasets import open_dataset

            err.print(f"this machine: {system.cpu_model()}, flags {', '.join(system.cpu_flags()) or 'none listed'} "
                      "(figures hold for CPUs with the same flags only)", markup=False)
            result = suite.run([suite.parse_variant(b) for b in bundles], open_dataset(dataset_path),
                               test_groups=test_groups.split(",") if test_groups else None, repeats=repeats,
                               clips_per_bucket=clips_per_bucket, batch=batch, threads=threads, reference=reference,
                               baselines=not no_baselines, device_name=device_name, backend=backend,
                               folds=suite.read_folds(folds_paths) if folds_paths else None, peers=peers,
                               work=out / "work", ray_address=address, workers=workers, progress=err.print)
        written = suite.write(result, out)
    click.echo(suite.markdown(result))
    wrote(f"{out}/{', '.join(written)}")
    if "pareto.png" not in written:
        err.print('no pareto.png: the plot needs matplotlib (pip install matplotlib, or "edgeser[bench]")')
