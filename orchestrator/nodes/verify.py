"""Verify node: before the film is stitched, every finished shot's files are checked against the
digests recorded when its attempts were written. A shot with a damaged or missing file is rendered
again (its speech, clip and scores come back from the cache when those entries are sound), so a
resumed run never stitches a corrupted clip and never needs a hand-deleted folder to go on.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from orchestrator.context import RunContext
from orchestrator.nodes.schedule import shot_states
from orchestrator.state import FilmState
from orchestrator.store import digest_file


def damaged_files(result: dict) -> list[str]:
    """The files of a shot result that are missing or differ from their recorded digest."""
    bad = []
    for folder, files in result.get("files", {}).items():
        for name, digest in files.items():
            path = Path(folder) / name
            if not path.is_file() or digest_file(path) != digest:
                bad.append(str(path))
    return bad


def verify_node(state: FilmState, ctx: RunContext, rerun: Callable[[dict], dict]) -> dict:
    """Re-render (through the cache) every shot whose recorded files do not check out."""
    ctx.check_stop()
    redone = {}
    for first in shot_states(state, ctx):
        sid = first["shot_id"]
        bad = damaged_files(state["results"][sid])
        if bad:
            ctx.on_event("repair", {"shot": sid, "files": bad})
            redone.update(rerun(first)["results"])
    return {"results": redone} if redone else {}
