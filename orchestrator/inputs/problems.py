"""Input problems, each located in a file: the CLI prints them all at once and exits 2."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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


Spot = tuple[int, int, int, int]  # key line, key col, value line, value col (1-based)

@dataclass
class Source:
    """One input file: its plain data and where every key and list item sits in it."""

    path: Path  # as the user (or the file naming it) spelled it
    data: Any
    spots: dict[tuple, Spot]

    @property
    def name(self) -> str:
        return os.path.normpath(str(self.path))

    def at(self, loc: tuple, value: bool = True) -> tuple[int, int]:
        """Line and column of `loc` (its value, or its key), or of the nearest enclosing node."""
        for n in range(len(loc), -1, -1):
            spot = self.spots.get(tuple(loc[:n]))
            if spot is not None:
                return (spot[2], spot[3]) if value and n == len(loc) else (spot[0], spot[1])
        return 1, 1

    def problem(self, loc: tuple, message: str, fix: str = "", value: bool = True) -> Problem:
        line, col = self.at(loc, value)
        return Problem(self.name, line, col, message, fix)

    def get(self, loc: tuple, default: Any = None) -> Any:
        node = self.data
        for part in loc:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return default
        return node
