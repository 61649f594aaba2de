"""Progress of a long phase as lines in a log (the torch side's jobs print them where a bar would not show)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class Ticker:
    """Lines for a long phase: ``label: 120/462 (8 s)`` at most every ``every_s`` seconds while it runs, and
    ``label: 462 in 21.3 s`` when it ends (how the guard's cost shows in the log)."""

    def __init__(self, progress: Callable[[str], None], label: str, total: int, every_s: float = 5.0) -> None:
        self.progress, self.label, self.total, self.every_s = progress, label, total, every_s
        self.start = self.last = time.perf_counter()

    def __call__(self, done: int) -> None:
        now = time.perf_counter()
        if now - self.last >= self.every_s and done < self.total:
            self.progress(f"{self.label}: {done}/{self.total} ({now - self.start:.0f} s)")
            self.last = now

    def finish(self, done: int | None = None) -> float:
        seconds = time.perf_counter() - self.start
        n = self.total if done is None else done
        self.progress(f"{self.label}: {n} in {seconds:.1f} s" if n else f"{self.label}: {seconds:.1f} s")
        return seconds

    def over(self, items: Iterable[T]) -> Iterator[T]:
        """``items`` as they are, ticking at each and finishing after the last."""
        n = 0
        for n, item in enumerate(items, 1):
            yield item
            self(n)
        self.finish(n)
