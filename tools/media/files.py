"""Temporary names for files written in place: every writer writes to one, then renames it over the
real name, so a crash never leaves a half-written file under the real name.

Temporary files get the permissions a plain `open()` would give (0666 less the umask), not
mkstemp's 0600, so renamed outputs are as readable by the user's group as they expect.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o022)  # read it by setting it; put it straight back
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()
TEMP_MARK = ".tmp"  # every temporary name holds this; stale ones are swept on the next run


def user_cache_dir(make: bool = True) -> Path:
    """The user's cache folder for compose (`$XDG_CACHE_HOME/cascade-composer` or
    `~/.cache/cascade-composer`): patched models, voice profiles, crash reports. Never the repository.
    Made if missing, unless not `make`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "cascade-composer"
    if make:
        path.mkdir(parents=True, exist_ok=True)
    return path


def voice_cache_file(name: str, folder: str = "voices", make: bool = True) -> Path:
    """`name` in the user's voice cache folder `folder` (made if missing, unless not `make`)."""
    d = user_cache_dir(make) / folder
    if make:
        d.mkdir(parents=True, exist_ok=True)
    return d / name


def digest_file(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def temp_path(path: Path) -> Path:
    """A unique temporary name next to `path` with the same suffix (encoders look at it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f"{TEMP_MARK}{path.suffix}", dir=path.parent)
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    return Path(name)


@contextmanager
def written_whole(path: Path):
    """A temporary name next to `path` to write to; renamed over `path` when the block ends, removed when it
    fails (a reader never sees half a file, and no temporary is left behind)."""
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_copy(src: Path, dst: Path) -> None:
    """Copy `src` to `dst` through a temporary name (no temporary left behind on failure)."""
    with written_whole(dst) as tmp:
        shutil.copyfile(src, tmp)
