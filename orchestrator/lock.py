"""One run per output folder: an exclusive lock, and the sweep of what a killed run left behind.

The lock is an `flock` on `<out>/.lock`, so the kernel releases it when its process ends however it
ends (exit, exception, SIGKILL). The file records the holder's pid, host and command, so a second run
can name the process it waits for; a lock file whose process is gone is stale and simply reused.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

from tools.base import ToolError
from tools.media.files import TEMP_MARK

LOCK_NAME = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


class OutputLock:
    """`with OutputLock(out_dir):` holds the folder for this process or raises ToolError (exit 2)."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / LOCK_NAME
        self._fd = None

    def __enter__(self) -> "OutputLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            os.close(fd)
            raise ToolError(
                f"{self.path.parent} is being rendered by another compose process ({holder})",
                "wait for it to finish, stop it, or give this run another --out folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                                 "command": " ".join(sys.argv)[:500]}).encode())
        self._fd = fd
        return self

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except ValueError:
            return "pid unknown"
        pid = info.get("pid")
        since = time.strftime("%H:%M:%S", time.localtime(info.get("started", 0)))
        state = "running" if isinstance(pid, int) and _alive(pid) else "exiting"
        return f"pid {pid} on {info.get('host', '?')}, {state} since {since}: {info.get('command', '?')}"

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def sweep_stale_temps(out_dir: Path) -> int:
    """Remove what an interrupted run left half-written: temp files anywhere in the output folder and
    temp entry folders in the cache. Only call it holding the folder's lock. Returns the count."""
    removed = 0
    if not out_dir.is_dir():
        return 0
    for path in out_dir.rglob(f"*{TEMP_MARK}*"):
        if path.is_file() and path.name.startswith("."):
            path.unlink(missing_ok=True)
            removed += 1
    cache = out_dir / "cache"
    if cache.is_dir():
        for shard in cache.iterdir():
            if shard.is_dir():
                for entry in shard.iterdir():
                    if entry.name.startswith(".") and entry.is_dir():  # a cache build that never finished
                        shutil.rmtree(entry, ignore_errors=True)
                        removed += 1
    return removed
