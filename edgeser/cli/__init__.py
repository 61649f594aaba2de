"""The ``edgeser`` command: :func:`main` (``main.py``: the runtime's commands, and those of the torch-side packages,
joined through the ``edgeser.commands`` entry points), ``common.py`` (what every command shares: consoles, one-line
errors, the progress bar, --backend/--trust/--ray), ``stream.py`` (listen, serve)."""

from edgeser.cli.main import main

__all__ = ["main"]
