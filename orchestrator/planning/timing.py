"""Shot timing: how long a line is expected to take, and a shot retimed to its real speech."""
from __future__ import annotations

from typing import Optional

from orchestrator.schema.plan import Shot, SpeechSegment

LEAD_IN = 0.5  # seconds of picture before the first line of a shot
GAP = 0.35  # pause between consecutive lines in one shot
TAIL = 0.6  # seconds held after the last line
ESTABLISHING = 2.5  # seconds of an establishing shot with no action
ACTION_PAD = 1.0  # extra seconds for a shot that carries action
OVERLAP_DELAY = 0.4  # an overlapping line starts this long after the line it interrupts


def estimate_speech_seconds(text: str) -> float:
    """A speaking-time estimate (about 2.6 words per second) used until real speech exists."""
    return 0.3 + len(text.split()) / 2.6


def retime_shot(shot: Shot, durations: dict[str, float]) -> Shot:
    """Place each line by its real duration; the shot lasts until the last line ends plus a tail."""
    t = LEAD_IN
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
    duration = end + TAIL + pad if segs else ESTABLISHING + pad
    return shot.model_copy(update={"speech": segs, "duration": round(duration, 3)})
