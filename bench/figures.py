"""A benchmark figure: the runs that gave a value and the runs that failed, printed together.

Every figure of bench/ is printed as its median and range over the runs that gave a value, with
the number of runs and of failures beside it: a failed run is counted and its reason printed,
never dropped from the count.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Runs:
    """Values of one figure over repeated runs, and the runs that gave none."""

    what: str
    values: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    def fail(self, reason: str) -> None:
        self.failures.append(reason)

    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def summary(self, fmt: Callable[[float], str] = lambda v: f"{v:.1f}") -> str:
        """'median M (range A–B), N runs, F failed', or why there is no figure."""
        n = len(self.values) + len(self.failures)
        failed = f"{len(self.failures)} failed" + (
            f": {'; '.join(sorted(set(self.failures)))}" if self.failures else "")
        if not self.values:
            return f"no figure: {n} runs, {failed}"
        lo, hi = min(self.values), max(self.values)
        m = statistics.median(self.values)
        return f"median {fmt(m)} (range {fmt(lo)}–{fmt(hi)}), {n} runs, {failed}"
