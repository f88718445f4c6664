"""What is wrong with a config file: `Problem` (an error or a warning), `ConfigError`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

PACKAGE: Final = "bonding"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the config, precise enough to fix it without reading code."""

    severity: Severity
    section: str
    option: str | None
    value: str | None
    message: str
    package: str = PACKAGE

    def __str__(self) -> str:
        where = f"{self.package}.{self.section}"
        if self.option is not None:
            where += f".{self.option}"
        if self.value is not None:
            where += f"={self.value!r}"
        return f"{self.severity}: {where}: {self.message}"


class ConfigError(Exception):
    """The config cannot be used; `problems` says why (at least one error among them)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))

