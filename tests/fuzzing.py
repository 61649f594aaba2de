"""What the fuzz suites share: their hypothesis settings and a record of each case's outcome.

Each case's outcome (``ok``, ``refused: NoSpeechError``, ``ended: 1008`` ...) is a hypothesis event (shown by
``pytest --hypothesis-show-statistics``) and a count per test. ``python -m edgeser_benchmarks.fuzz_outcomes`` runs the
suites with more cases (``EDGESER_FUZZ_EXAMPLES``) and reads the counts from the file named by
``EDGESER_FUZZ_REPORT``, which :func:`write_report` (called by ``conftest.py`` at the end of the session) writes.
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings

REPORT = os.environ.get("EDGESER_FUZZ_REPORT")
_OUTCOMES: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)


def fuzz_settings(examples: int) -> Any:
    """``examples`` cases (or ``EDGESER_FUZZ_EXAMPLES``), no deadline; when a report is written, no example
    database either, so that every case counted is a new one."""
    n = int(os.environ.get("EDGESER_FUZZ_EXAMPLES") or examples)
    extra: dict[str, Any] = {"database": None} if REPORT else {}
    return settings(max_examples=n, deadline=None, **extra,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def record(outcome: str) -> None:
    """One case's outcome, counted under the running test's name."""
    event(outcome)
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
    _OUTCOMES[test][outcome] += 1


def write_report(exit_status: int) -> None:
    if REPORT:
        counts = {test: dict(c.most_common()) for test, c in sorted(_OUTCOMES.items())}
        Path(REPORT).write_text(json.dumps({"exit_status": exit_status, "outcomes": counts}, indent=2) + "\n")
