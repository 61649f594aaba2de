"""The shape of the packages: one direction of imports, one folder per import package, one command.

Imports run one way: the runtime (``edgeser``) <- ``edgeser_calibration`` <- ``edgeser_export`` <-
``edgeser_benchmarks``. Each is the folder of its name at the top of the repository (no remapping in pyproject.toml).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["edgeser", "edgeser_calibration", "edgeser_export", "edgeser_benchmarks"]  # each may import those before it
if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def layer(module: str) -> int | None:
    """Index in LAYERS of an edgeser module (None for anything else)."""
    if module.partition(".")[0] not in LAYERS:
        return None
    return max(i for i, name in enumerate(LAYERS) if module == name or module.startswith(name + "."))


def modules() -> dict[str, Path]:
    """Every module of the four packages, by its import name."""
    out = {}
    for package in LAYERS:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            out[".".join(parts)] = path
    return out


def imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, at any depth (functions included), relative ones resolved."""
    found = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            found.append((node.lineno, source))
            found += [(node.lineno, f"{source}.{a.name}") for a in node.names]  # a name may be a submodule
    return found


def test_imports_run_one_way_and_the_runtime_imports_nothing_above_it() -> None:
    wrong = []
    for module, path in modules().items():
        own = layer(module)
        assert own is not None
        for line, target in imports(path, module):
            top = target.partition(".")[0]
            if own == 0 and top in ("torch", "transformers"):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}: the runtime never imports torch")
            if top in ("export", "calibration", "benchmarks") or target.startswith(
                    ("edgeser.export", "edgeser.calibration", "edgeser.benchmarks")):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}, a name of the old layout "
                             "(now edgeser_export, edgeser_calibration, edgeser_benchmarks)")
            t = layer(target)
            if t is not None and t > own:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {module} ({LAYERS[own]}) imports {target} "
                             f"({LAYERS[t]}), which is above it")
    assert not wrong, "\n".join(wrong)
    assert len(modules()) > 80  # the walk saw the whole tree


def test_the_walk_would_catch_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "default.py"
    bad.write_text("def f():\n    from edgeser_export.pipeline import export_bundle\n    from .model import bundle\n"
                   "    from edgeser_benchmarks import suite\n")
    found = imports(bad, "edgeser.default")
    assert (2, "edgeser_export.pipeline") in found and (3, "edgeser.model.bundle") in found
    assert (4, "edgeser_benchmarks.suite") in found
    assert layer("edgeser_export.pipeline") == 2 > layer("edgeser.default") == 0  # type: ignore[operator]


def test_pyproject_installs_every_package_folder_from_the_folder_of_its_name() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    folders = {m for m, p in modules().items() if p.name == "__init__.py"}
    assert listed == folders, f"pyproject.toml [tool.setuptools] packages: missing {sorted(folders - listed)}, " \
                              f"extra {sorted(listed - folders)}"
    assert {p.partition(".")[0] for p in listed} == set(LAYERS)
    assert "package-dir" not in config  # every package is the folder of its name


def test_every_registered_command_loads_and_joins_the_one_command() -> None:
    from importlib.metadata import entry_points

    import click

    from edgeser.cli import main

    registered = {ep.name: ep for ep in entry_points(group="edgeser.commands")}
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["edgeser.commands"]
    if set(registered) != set(config):
        pytest.fail("the installed entry points are not pyproject.toml's: reinstall (pip install -e .)")
    ctx = click.Context(main)
    for name in ("export", "train", "evaluate", "ablate", "quantize", "engines", "distill", "calibration", "bench"):
        assert name in registered, name
        command = main.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.help, name
        assert registered[name].value.startswith(("edgeser_export.", "edgeser_calibration.", "edgeser_benchmarks."))
    assert set(registered) <= set(main.list_commands(ctx))
    for name in ("predict", "inspect", "listen", "serve", "align", "encode", "enroll", "keygen", "sign"):
        assert name in main.commands, f"{name} is a runtime command"


def test_every_relative_link_of_the_docs_resolves() -> None:
    """README.md, docs/*.md and the model card link files of the repository by relative paths: each must exist
    (anchors are not checked; web links are not followed)."""
    import re

    root = Path(__file__).resolve().parents[1]
    pages = [root / "README.md", root / "edgeser" / "models" / "MODEL_CARD.md", *sorted((root / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(root)}: {target}")
    assert len(pages) > 10 and broken == []


def test_the_repository_tracks_no_weights_or_work_folders_of_runs() -> None:
    """What a run leaves beside its results (``edgeser bench --out DIR`` keeps its converted models and predictions
    in DIR/work) is not committed; the largest file tracked is the shipped default's speech graph (23 MB)."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    paths = [p for p in tracked.decode().split("\0") if p]
    too_big = [f"{p}: {(ROOT / p).stat().st_size / 1e6:.0f} MB" for p in paths
               if (ROOT / p).is_file() and (ROOT / p).stat().st_size > 30_000_000]
    work = [p for p in paths if "/results/" in p and "/work/" in p]
    assert len(paths) > 100 and too_big == [] and work == [], too_big + work[:5]


def test_every_module_and_repository_path_the_docs_name_exists() -> None:
    """``python -m MODULE`` and `path/of/the/repository` in the README, docs/, the model card and the benchmarks'
    index name modules that import and files that exist (a rename that missed a page fails here)."""
    import importlib.util
    import re

    pages = [ROOT / "README.md", ROOT / "edgeser" / "models" / "MODEL_CARD.md", *sorted((ROOT / "docs").glob("*.md")),
             ROOT / "edgeser_benchmarks" / "README.md"]
    missing, named = [], 0
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for module in set(re.findall(r"python -m (edgeser[\w.]*)", text)):
            named += 1
            if not module.endswith(".NAME") and importlib.util.find_spec(module) is None:
                missing.append(f"{page.relative_to(ROOT)}: python -m {module}")
        for path in set(re.findall(r"(?<![\w/.~-])((?:edgeser\w*|export|calibration|benchmarks|tests|docs|examples)/"
                                   r"[\w/.-]*[\w/])", text)):
            named += 1
            if not (ROOT / path).exists():
                missing.append(f"{page.relative_to(ROOT)}: {path}")
    assert named > 50 and missing == [], "\n".join(missing)
