"""Input problems, each located in a file: the CLI prints them all at once and exits 2."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Problem:
    """One input problem, located in a file."""

    file: str
    line: int
    col: int
    message: str
    fix: str = ""

    def __str__(self) -> str:
        fix = f" (fix: {self.fix})" if self.fix else ""
        return f"{self.file}:{self.line}:{self.col}: {self.message}{fix}"


class SpecError(Exception):
    """Raised with every problem found in the inputs; the CLI prints them and exits 2."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
