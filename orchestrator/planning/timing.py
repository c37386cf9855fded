"""Shot timing: how long a line is expected to take, a shot retimed to its real speech, and long
lines cut into parts that continue across consecutive shots.

A line longer than MAX_LINE_SECONDS is spoken in parts, cut at sentence boundaries (then at clause
boundaries, then between words), each part in its own shot of the same speaker. A part's line id is
`<line id>-<k>of<n>`; the shots of a cut line leave only CONTINUE_GAP between its parts, so the
speech runs on as one line and its subtitles follow one another.
"""
from __future__ import annotations

import re
from typing import Optional

from orchestrator.schema.plan import Shot, SpeechSegment

LEAD_IN = 0.5  # seconds of picture before the first line of a shot
GAP = 0.35  # pause between consecutive lines in one shot
TAIL = 0.6  # seconds held after the last line
ESTABLISHING = 2.5  # seconds of an establishing shot with no action
ACTION_PAD = 1.0  # extra seconds for a shot that carries action
OVERLAP_DELAY = 0.4  # an overlapping line starts this long after the line it interrupts
MAX_LINE_SECONDS = 20.0  # the longest a line runs in one shot (estimated); longer lines continue
CONTINUE_GAP = 0.05  # picture before and after a part of a cut line: the speech runs on across the cut
WORDS_PER_SECOND = 2.6
PART_RE = re.compile(r"^(?P<base>.+)-(?P<k>[0-9]+)of(?P<n>[0-9]+)$")


def estimate_speech_seconds(text: str) -> float:
    """A speaking-time estimate (about 2.6 words per second) used until real speech exists."""
    return 0.3 + len(text.split()) / WORDS_PER_SECOND


def _pieces(text: str) -> list[str]:
    """Sentences, each cut further at clause boundaries and then between words until it fits a shot."""
    out: list[str] = []
    for sentence in re.split(r"(?<=[.!?\u2026])\s+", text.strip()):
        if estimate_speech_seconds(sentence) <= MAX_LINE_SECONDS:
            out.append(sentence)
            continue
        for clause in re.split(r"(?<=[,;:])\s+", sentence):
            if estimate_speech_seconds(clause) <= MAX_LINE_SECONDS:
                out.append(clause)
                continue
            words, step = clause.split(), int((MAX_LINE_SECONDS - 0.3) * WORDS_PER_SECOND)
            out += [" ".join(words[i:i + step]) for i in range(0, len(words), step)]
    return [p for p in out if p]


def line_parts(text: str) -> list[str]:
    """The line as spoken shot by shot: itself, or its parts when it is too long for one shot."""
    if estimate_speech_seconds(text) <= MAX_LINE_SECONDS:
        return [text]
    parts: list[str] = []
    current = ""
    for piece in _pieces(text):
        joined = f"{current} {piece}" if current else piece
        if current and estimate_speech_seconds(joined) > MAX_LINE_SECONDS:
            parts.append(current)
            current = piece
        else:
            current = joined
    return parts + [current]


def part_id(line_id: str, k: int, n: int) -> str:
    return f"{line_id}-{k}of{n}"


def expected_text(lines: dict[str, str], line_id: str) -> Optional[str]:
    """What the screenplay says a segment must speak: the whole line, or one part of a cut line."""
    if line_id in lines:
        return lines[line_id]
    m = PART_RE.match(line_id)
    if not m or m["base"] not in lines:
        return None
    parts = line_parts(lines[m["base"]])
    k, n = int(m["k"]), int(m["n"])
    return parts[k - 1] if n == len(parts) and 1 <= k <= n else None


def _continues(seg: SpeechSegment, before: bool) -> bool:
    """Whether the segment is a part of a cut line with another part before (or after) it."""
    m = PART_RE.match(seg.line_id)
    return bool(m) and (int(m["k"]) > 1 if before else int(m["k"]) < int(m["n"]))


def retime_shot(shot: Shot, durations: dict[str, float]) -> Shot:
    """Place each line by its real duration; the shot lasts until the last line ends plus a tail."""
    t = CONTINUE_GAP if shot.speech and _continues(shot.speech[0], before=True) else LEAD_IN
    prev: Optional[SpeechSegment] = None
    segs = []
    for seg in shot.speech:
        d = durations.get(seg.line_id, seg.duration)
        start = prev.start + OVERLAP_DELAY if (seg.overlap and prev) else t
        seg = seg.model_copy(update={"start": round(start, 3), "duration": round(d, 3)})
        t = max(t, start + d + GAP)
        segs.append(seg)
        prev = seg
    end = max((s.start + s.duration for s in segs), default=0.0)
    pad = ACTION_PAD if shot.action else 0.0
    tail = CONTINUE_GAP if segs and _continues(segs[-1], before=False) else TAIL
    duration = end + tail + pad if segs else ESTABLISHING + pad
    return shot.model_copy(update={"speech": segs, "duration": round(duration, 3)})
