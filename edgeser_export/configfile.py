"""Reading TOML or JSON config files (recipes, distillation)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from edgeser._optional import require
from edgeser.errors import DatasetError, EdgeserError


def read_config(path: Path, error: type[DatasetError] = DatasetError) -> dict[str, Any]:
    """The table in ``path`` (``.json``, else TOML), or ``error`` saying why it cannot be read."""
    if not path.is_file():
        raise error(f"{path}: no such config file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            raw = json.loads(text)
        elif sys.version_info >= (3, 11):
            import tomllib

            raw = tomllib.loads(text)
        else:  # Python 3.10 (JetPack 6): the tomli backport, or use a JSON config
            raw = require("tomli", "export", "TOML configs on Python 3.10", install="pip install tomli").loads(text)
    except (ValueError, ImportError, EdgeserError) as e:
        raise error(f"{path}: cannot parse ({e})") from e
    if not isinstance(raw, dict):
        raise error(f"{path}: expected a table at the top level")
    return raw
