"""Atomic writes and the content-addressed cache.

Every artifact is written to a temporary name in the destination folder and renamed into place, so
a crash never leaves a half-written file under its real name. A cache entry is a folder named by the
digest of every input that changes its output; its `entry.json` records the digest of each file, and
an entry whose files no longer match is deleted and rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Optional

from tools.media.files import (  # noqa: F401 (atomic_copy, digest_file, written_whole: re-exported)
    DIR_MODE,
    atomic_copy,
    digest_file,
    written_whole,
)


def digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_json(obj) -> str:
    """Digest of a JSON-able object, independent of key order."""
    return digest_bytes(json.dumps(obj, sort_keys=True, default=str, separators=(",", ":")).encode())




def atomic_write_bytes(path: Path, data: bytes) -> None:
    with written_whole(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def cache_counts(*outcomes: str) -> dict:
    """{"hits", "misses", "rebuilt"} for some `get_or_build` outcomes (a rebuilt entry is also a miss)."""
    return {"hits": sum(o == "hit" for o in outcomes), "misses": sum(o != "hit" for o in outcomes),
            "rebuilt": sum(o == "rebuilt" for o in outcomes)}


def add_counts(left: dict, right: dict) -> dict:
    """Reducer: cache counts summed key by key."""
    out = dict(left or {})
    for k, v in (right or {}).items():
        out[k] = out.get(k, 0) + v
    return out


class Cache:
    """Folders of artifacts keyed by the digest of their inputs, verified on every reuse."""

    def __init__(self, root: Path):
        self.root = root

    def entry_dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def lookup(self, key: str) -> tuple[Optional[Path], bool]:
        """(the entry's folder if it exists and every recorded file matches its digest, whether a
        damaged entry was found and deleted)."""
        d = self.entry_dir(key)
        meta = d / "entry.json"
        if not meta.exists():
            return None, False
        try:
            files = json.loads(meta.read_text())["files"]
            ok = all((d / name).exists() and digest_file(d / name) == dig for name, dig in files.items())
        except (OSError, ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            shutil.rmtree(d, ignore_errors=True)
            return None, True
        return d, False

    def get_or_build(self, key: str, build: Callable[[Path], Iterable[str]]) -> tuple[Path, str]:
        """Return (entry folder, outcome: "hit" | "miss" | "rebuilt"). `build(tmpdir)` writes files and
        returns their names."""
        found, damaged = self.lookup(key)
        if found is not None:
            return found, "hit"
        final = self.entry_dir(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.", dir=final.parent))
        os.chmod(tmp, DIR_MODE)  # mkdtemp's 0700 would hide the entry from the user's group
        try:
            names = list(build(tmp))
            files = {n: digest_file(tmp / n) for n in names}
            atomic_write_json(tmp / "entry.json", {"key": key, "files": files})
            # Another worker may have published the same entry meanwhile (and handed it out): a
            # published, verified entry is never replaced; ours is dropped and theirs used.
            try:
                os.rename(tmp, final)
            except OSError:
                published, _ = self.lookup(key)
                if published is None:  # a damaged leftover, not a live entry: replace it
                    shutil.rmtree(final, ignore_errors=True)
                    os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final, "rebuilt" if damaged else "miss"
