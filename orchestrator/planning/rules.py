"""The rule planner: the offline default that turns a parsed screenplay into a ShotPlan.

Coverage follows ordinary film grammar: an establishing wide shot per scene, then dialogue
coverage with speaker singles and reverse over-the-shoulder shots, two-shots for overlapping speech
and quick exchanges, and a closing wide shot for trailing action. Durations are estimated from the
text here and replaced by the synthesized speech's real durations in `retime_shot`.
"""
from __future__ import annotations

from typing import Iterator, Optional

from orchestrator.inputs.project import Project
from orchestrator.planning.captions import build_caption
from orchestrator.planning.timing import estimate_speech_seconds, retime_shot
from orchestrator.schema.cast import Cast
from orchestrator.schema.plan import (
    OmniCaption,
    SceneInfo,
    Shot,
    ShotPlan,
    SpeechSegment,
)
from orchestrator.schema.script import ActionBeat, DialogueBeat, SceneSpec

QUICK_WORDS = 4  # lines this short, alternating between two speakers, share a two-shot
CAMERA_BY_FRAMING = {
    "wide": "pan-right",
    "two-shot": "static",
    "medium": "push-in",
    "close-up": "push-in",
    "over-shoulder": "static",
}


def line_id(scene: int, index: int) -> str:
    return f"sc{scene:02d}_l{index:02d}"


def dialogue_beats(project: Project) -> Iterator[tuple[str, int, int, DialogueBeat]]:
    """Every dialogue beat of the screenplay, in order: (its stable line id, its scene's index, its index among
    the scene's beats (both from 1, as the loader's `beat:S:B` locations), the beat)."""
    for si, scene in enumerate(project.script.scenes, 1):
        k = 0
        for bi, beat in enumerate(scene.beats, 1):
            if isinstance(beat, DialogueBeat):
                k += 1
                yield line_id(si, k), si, bi, beat


def screenplay_lines(project: Project) -> dict[str, str]:
    """Every dialogue line of the screenplay by its stable id, in order."""
    return {lid: beat.line for lid, _, _, beat in dialogue_beats(project)}


def scene_characters(scene: SceneSpec, cast: Cast) -> list[str]:
    """Cast ids present in a scene, screen order left to right.

    A voice-over speaker is never part of the scene; by default neither is a speaker heard only
    from off screen (an explicit `characters` list may still bring them on for other lines).
    """
    voice_over = {cast.lookup(b.character).id for b in scene.beats
                  if isinstance(b, DialogueBeat) and b.delivery == "voice-over"}
    if scene.characters:
        ids = [cast.lookup(n).id for n in scene.characters]
        on_screen_lines = {cast.lookup(b.character).id for b in scene.beats
                           if isinstance(b, DialogueBeat) and b.delivery != "voice-over"}
        return [c for c in ids if c not in voice_over or c in on_screen_lines]
    ids: list[str] = []
    for beat in scene.beats:
        if isinstance(beat, DialogueBeat) and beat.delivery == "on-screen":
            cid = cast.lookup(beat.character).id
            if cid not in ids:
                ids.append(cid)
    return ids


class RulePlanner:
    """Screenplay -> ShotPlan by coverage rules; deterministic and offline."""

    name = "rules"

    @property
    def usage(self) -> dict:
        """The rule planner spends nothing."""
        return {}

    def plan(self, project: Project) -> ShotPlan:
        cast = project.cast
        scenes: list[SceneInfo] = []
        shots: list[Shot] = []
        for si, spec in enumerate(project.script.scenes, 1):
            info = SceneInfo(
                index=si,
                heading=spec.heading,
                description=spec.description,
                background=str(spec.background) if spec.background else None,
                characters=scene_characters(spec, cast),
            )
            scenes.append(info)
            for draft in self._cover_scene(si, spec, info, cast):
                shot = retime_shot(self._finish(draft, len([s for s in shots if s.scene == si]) + 1), {})
                caption = build_caption(shot, cast, info)
                shots.append(shot.model_copy(update={"caption": caption, "caption_text": caption.render()}))
        return ShotPlan(title=project.script.title, scenes=scenes, shots=shots)

    @staticmethod
    def _finish(draft: dict, number: int) -> Shot:
        framing = draft["framing"]
        empty = OmniCaption(anchors=[], scene="", parts=[])
        return Shot(
            id=f"sc{draft['scene']:02d}_sh{number:02d}",
            scene=draft["scene"],
            framing=framing,
            camera=CAMERA_BY_FRAMING[framing],
            characters=draft["characters"],
            focus=draft.get("focus"),
            action=" ".join(draft.get("action", [])).strip(),
            speech=draft.get("speech", []),
            duration=1.0,
            caption=empty,
        )

    def _cover_scene(self, si: int, spec: SceneSpec, info: SceneInfo, cast: Cast) -> list[dict]:
        everyone = info.characters
        drafts: list[dict] = []
        pending_action: list[str] = [spec.description] if spec.description else []
        beats = list(spec.beats)
        # Action before the first line belongs to the establishing shot.
        while beats and isinstance(beats[0], ActionBeat):
            pending_action.append(beats.pop(0).action)
        drafts.append({"scene": si, "framing": "wide", "characters": everyone, "action": pending_action})
        pending_action = []
        k = 0
        last_single: Optional[str] = None
        i = 0
        while i < len(beats):
            beat = beats[i]
            if isinstance(beat, ActionBeat):
                pending_action.append(beat.action)
                i += 1
                continue
            group = [beat]
            # Overlaps and quick two-person exchanges share one two-shot.
            j = i + 1
            while j < len(beats) and isinstance(beats[j], DialogueBeat) and (
                beats[j].overlap or self._quick(group[-1], beats[j], cast)
            ):
                group.append(beats[j])
                j += 1
            segs = []
            for b in group:
                k += 1
                segs.append(
                    SpeechSegment(
                        line_id=line_id(si, k),
                        speaker=cast.lookup(b.character).id,
                        text=b.line,
                        parenthetical=b.parenthetical,
                        overlap=b.overlap,
                        duration=round(estimate_speech_seconds(b.line), 3),
                        delivery=b.delivery,
                    )
                )
            speakers = [s.speaker for s in segs if not s.off_screen]
            if speakers:
                framing, chars = self._framing(group, speakers, everyone, last_single,
                                               len(segs[0].text.split()))
                heard = {s.speaker for s in segs if s.off_screen} - set(speakers)
                chars = [c for c in chars if c not in heard]
                focus = speakers[0]
            else:
                framing, chars, focus = self._listeners(segs, everyone, last_single)
            drafts.append(
                {"scene": si, "framing": framing, "characters": chars, "focus": focus,
                 "action": pending_action, "speech": segs}
            )
            pending_action = []
            last_single = speakers[0] if speakers and len(set(speakers)) == 1 else None
            i = j
        if pending_action:
            drafts.append({"scene": si, "framing": "wide", "characters": everyone, "action": pending_action})
        return drafts

    @staticmethod
    def _listeners(segs, everyone, last_single) -> tuple[str, list[str], Optional[str]]:
        """Coverage of lines heard from off screen: the camera holds on who listens, or the set."""
        heard = {s.speaker for s in segs}
        listeners = [c for c in everyone if c not in heard]
        if not listeners:
            return "wide", [], None
        if len(listeners) == 1:
            return "medium", listeners, listeners[0]
        focus = last_single if last_single in listeners else listeners[0]
        return "two-shot", listeners, focus

    @staticmethod
    def _quick(prev: DialogueBeat, nxt: DialogueBeat, cast: Cast) -> bool:
        return (
            prev.delivery == nxt.delivery == "on-screen"
            and len(prev.line.split()) <= QUICK_WORDS
            and len(nxt.line.split()) <= QUICK_WORDS
            and cast.lookup(prev.character).id != cast.lookup(nxt.character).id
            and prev.shot is None
            and nxt.shot is None
        )

    @staticmethod
    def _framing(group, speakers, everyone, last_single, words) -> tuple[str, list[str]]:
        order = lambda ids: [c for c in everyone if c in ids]  # noqa: E731 - screen order
        hint = group[0].shot
        if len(set(speakers)) > 1:
            return hint or "two-shot", order(set(speakers))
        speaker = speakers[0]
        others = [c for c in everyone if c != speaker]
        if hint == "wide":
            return "wide", everyone
        if hint in ("two-shot", "over-shoulder") and others:
            return hint, order({speaker, others[0]})
        if hint in ("medium", "close-up"):
            return hint, [speaker]
        # Reverse shot: the previous single was the other character, so look over their shoulder.
        if others and last_single and last_single != speaker:
            listener = last_single if last_single in others else others[0]
            return "over-shoulder", order({speaker, listener})
        return ("close-up" if words > 12 else "medium"), [speaker]
