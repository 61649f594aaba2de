"""``edgeser calibration``: representative sets for INT8 calibration (joined to the ``edgeser`` command through
the ``edgeser.commands`` entry points in pyproject.toml)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeser.cli.common import one_line_errors, progress_bar


@click.group()
def calibration() -> None:
    """Representative sets for INT8 calibration."""


@calibration.command("build")
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder to write the set to.")
@click.option("--size", type=int, default=64, show_default=True, help="Number of utterances.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--min-s", type=float, default=1.0, show_default=True, help="Shortest item (deployment range).")
@click.option("--max-s", type=float, default=10.0, show_default=True, help="Longest item (deployment range).")
@click.option("--overwrite", is_flag=True)
def calibration_build(dataset: Path, out: Path, size: int, seed: int, min_s: float, max_s: float,
                      overwrite: bool) -> None:
    """Draw a calibration set from DATASET (a manifest CSV such as ravdess/labels.csv, or a corpus folder):
    balanced over classes and speakers, lengths spread over [min-s, max-s]."""
    from edgeser.datasets import open_dataset
    from edgeser_calibration.sets import build

    with one_line_errors():
        ds = open_dataset(dataset)
        with progress_bar(f"calibration set from {ds.name}", size) as progress:
            cset = build(ds, out, n=size, seed=seed, min_s=min_s, max_s=max_s, overwrite=overwrite,
                         progress=progress)
    click.echo(json.dumps({"path": str(out), **cset.describe()}, indent=2))
