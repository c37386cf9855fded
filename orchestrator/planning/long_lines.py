"""Long lines across shots: whatever planner made the plan, a line too long for one shot is spoken in
parts (`timing.line_parts`), each in its own shot of the same speaker and framing, one after another.

This bounds every shot's length, and with it the memory and time a shot takes to speak, render and
judge, whatever the screenplay holds (a 5,000-character monologue becomes some sixteen shots).
"""
from __future__ import annotations

from orchestrator.planning.captions import build_caption
from orchestrator.planning.timing import (
    estimate_speech_seconds,
    line_parts,
    part_id,
    retime_shot,
)
from orchestrator.schema.cast import Cast
from orchestrator.schema.plan import MAX_SHOTS_PER_SCENE, Shot, ShotPlan, SpeechSegment


def _split_shot(shot: Shot) -> list[Shot]:
    """The shot, or the shots it becomes when one of its lines is cut into parts."""
    if all(len(line_parts(seg.text)) == 1 for seg in shot.speech):
        return [shot]
    out: list[Shot] = []
    pending: list[SpeechSegment] = []

    def emit(segs: list[SpeechSegment]) -> None:
        action = shot.action if not out else ""  # the shot's action plays once, at its start
        out.append(retime_shot(shot.model_copy(update={"speech": segs, "action": action}), {}))

    for seg in shot.speech:
        parts = line_parts(seg.text)
        if len(parts) == 1:
            pending.append(seg.model_copy(update={"overlap": seg.overlap and bool(pending)}))
            continue
        if pending:
            emit(pending)
            pending = []
        n = len(parts)
        for k, text in enumerate(parts, 1):
            emit([seg.model_copy(update={"line_id": part_id(seg.line_id, k, n), "text": text, "overlap": False,
                                         "duration": round(estimate_speech_seconds(text), 3),
                                         "parenthetical": seg.parenthetical if k == 1 else None})])
    if pending:
        emit(pending)
    return out


def split_long_lines(plan: ShotPlan, cast: Cast) -> ShotPlan:
    """The plan with every over-long line cut across consecutive shots; shots renumbered per scene."""
    pieces = [p for shot in plan.shots for p in _split_shot(shot)]
    if len(pieces) == len(plan.shots):
        return plan
    shots: list[Shot] = []
    numbers: dict[int, int] = {}
    for shot in pieces:
        numbers[shot.scene] = numbers.get(shot.scene, 0) + 1
        if numbers[shot.scene] > MAX_SHOTS_PER_SCENE:
            raise ValueError(f"scene {shot.scene} needs more than {MAX_SHOTS_PER_SCENE} shots")
        shot = shot.model_copy(update={"id": f"sc{shot.scene:02d}_sh{numbers[shot.scene]:02d}"})
        caption = build_caption(shot, cast, plan.scenes[shot.scene - 1])
        shots.append(shot.model_copy(update={"caption": caption, "caption_text": caption.render()}))
    return plan.model_copy(update={"shots": shots})
