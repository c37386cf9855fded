"""Reading the retry log (`retries.jsonl`): records grouped by shot, the kept attempt, knob changes."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from rich.console import Console
from rich.markup import escape

from tools.base import ToolError


def load_records(path: Path, console: Optional[Console] = None) -> dict[str, list[dict]]:
    """Attempt records grouped by shot (in first-seen order), each list sorted by attempt.

    A line that is not a JSON object (a run killed mid-write) is skipped with a warning.
    """
    if not path.is_file():
        raise ToolError(f"{path}: no retry log here", "run `compose` on the script first, or check the output folder")
    shots: dict[str, list[dict]] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            shot = rec["shot"]
        except (json.JSONDecodeError, KeyError, TypeError):
            if console is not None:
                console.print(f"[yellow]{escape(str(path))}:{lineno}: unreadable record skipped[/]")
            continue
        shots.setdefault(shot, []).append(rec)
    for recs in shots.values():
        recs.sort(key=lambda r: r.get("attempt", 0))
    return shots


def kept_attempt(records: list[dict]) -> dict:
    """The attempt the film uses: the accepted one, else the best by quality."""
    for rec in records:
        if rec.get("verdict") in ("accepted", "accepted_after_retry"):
            return rec
    return max(records, key=lambda r: r.get("quality", 0.0))


def knob_changes(before: dict, after: dict) -> dict[str, list]:
    """{"speech.rate": [old, new]} for every knob that differs between two attempt records."""
    out = {}
    for group in ("speech_knobs", "video_knobs"):
        a, b = before.get(group) or {}, after.get(group) or {}
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                out[f"{group.split('_')[0]}.{key}"] = [a.get(key), b.get(key)]
    if before.get("seed") != after.get("seed"):
        out["seed"] = [before.get("seed"), after.get("seed")]
    return out
