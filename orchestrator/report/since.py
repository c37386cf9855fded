"""What changed in each voice since the last `compose voices` into the same folder, and why.

A writer who approved a voice, then added a character, swapped a clip or changed a backend, hears the
next audition and cannot tell what moved. Each audition records, per character, digests of what the voice
was made from (its reference clip; the rest of the cast's clips, which a fit keeps away from; the backend)
and of each line's audio. The next audition reads the previous voices.json before writing its own and
names, per character, what sounds different (the base, each line's audio, a verdict that flipped) and the
first cause it can see, with what keeps the voice where a cast change moved it (`voice.base`).
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

LOG = logging.getLogger(__name__)


def read_previous(path: Path) -> dict | None:
    """voices.json's content from an earlier audition, with its time; None where there is none or it cannot
    be read (a damaged or hand-edited file is passed over, not fatal)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["characters"] = [c for c in data["characters"] if isinstance(c, dict) and "id" in c]
        data["written"] = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(path)))
        return data
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        LOG.warning("ignoring an unreadable earlier %s", path)
        return None


def _cause(before: dict, now: dict, was: dict, summary: dict) -> str | None:
    """The first difference in what the voice was made from, as advice; None where none is recorded (an
    audition from before these digests were kept compares only its backend and pins)."""
    recorded = was.get("reference_sha256") and was.get("cast_sha256")
    if recorded and was["reference_sha256"] != now.get("reference_sha256"):
        return "its reference clip changed"
    if recorded and was["cast_sha256"] != now.get("cast_sha256"):
        keep = (f": pin `voice.base: {was['base']}` to keep the base it had" if was.get("base") and
                was.get("base") != now.get("base") and not now.get("pinned") else "")
        return f"the rest of the cast's clips changed (a voice is fitted away from the others' voices){keep}"
    if before.get("speech") != summary.get("speech"):
        return f"the speech backend changed ({before.get('speech')} -> {summary.get('speech')})"
    if was.get("pinned") != now.get("pinned"):
        return "its `voice.base` was " + ("pinned" if now.get("pinned") else "unpinned")
    if not recorded:
        return None
    return "the clips, the cast and the backend are as they were: the code or its settings changed"


def voice_changes(before: dict, summary: dict) -> dict[str, list[str]]:
    """Character id -> what sounds different from the `before` audition, the cause last (module docstring).
    Characters whose voice is as it was, or who are new, are left out; a line is compared only where its id and
    words are the same in both."""
    was_by_id = {c["id"]: c for c in before.get("characters", [])}
    out: dict[str, list[str]] = {}
    for now in summary["characters"]:
        was = was_by_id.get(now["id"])
        if was is None:
            continue
        said = []
        if was.get("base") != now.get("base"):
            said.append(f"base {was.get('base')} -> {now.get('base')}")
        lines = was.get("lines") if isinstance(was.get("lines"), list) else []  # a hand-edited file is no error
        old_lines = {(ln.get("line_id"), ln.get("text")): ln for ln in lines if isinstance(ln, dict)}
        same_words = [(old_lines[(ln["line_id"], ln["text"])], ln) for ln in now["lines"]
                      if (ln["line_id"], ln["text"]) in old_lines]
        moved = [ln["line_id"] for old, ln in same_words if old.get("sha256") and old["sha256"] != ln.get("sha256")]
        if moved:
            said.append(f"{len(moved)} of {len(same_words)} lines sound different ({', '.join(moved)})")
        said += [f"{ln['line_id']} {'passed' if old['passed'] else 'failed'}, now "
                 f"{'passes' if ln['passed'] else 'fails'}" for old, ln in same_words
                 if "passed" in old and old["passed"] != ln["passed"]]
        if said:
            cause = _cause(before, now, was, summary)
            out[now["id"]] = said + ([cause] if cause else [])
    return out


def since_last(before: dict | None, summary: dict) -> dict | None:
    """voices.json's "since_last": when the `before` audition was written and `voice_changes`; None without
    one, or where a hand-edited file cannot be compared (warned: the audition itself goes on)."""
    if before is None:
        return None
    try:
        return {"written": before["written"], "changes": voice_changes(before, summary)}
    except (TypeError, AttributeError, KeyError, ValueError):
        LOG.warning("the earlier voices.json cannot be compared: nothing is said about what changed")
        return None
