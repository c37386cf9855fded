"""Temporary names for files written in place: every writer writes to one, then renames it over the
real name, so a crash never leaves a half-written file under the real name."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def temp_path(path: Path) -> Path:
    """A unique temporary name next to `path` with the same suffix (encoders look at it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    return Path(name)
