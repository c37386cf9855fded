"""The LLM planner's reply schema and its checks: nothing the model says is trusted until it passes.

`PlannedFilm` is the compact schema the model answers in. `plan_from_reply` parses a reply (reasoning
blocks and code fences tolerated), validates it against the schema, checks it against the
screenplay and cast (lines covered once, in order, copied exactly, by their own speaker; characters
only from the cast and the scene; sane framings, texts and durations), and only then builds the
ShotPlan with the rule planner's own caption and timing code, and checks the omni-captions.
"""
from __future__ import annotations

import json
import re
from typing import Optional

from pydantic import ValidationError

from orchestrator.inputs.project import Project
from orchestrator.planning.captions import build_caption, caption_problems
from orchestrator.planning.rules import line_id, scene_characters, screenplay_lines
from orchestrator.planning.timing import estimate_speech_seconds, retime_shot
from orchestrator.schema.plan import (
    MAX_SHOTS_PER_SCENE,
    Camera,
    OmniCaption,
    PlanModel,
    SceneInfo,
    Shot,
    ShotPlan,
    SpeechSegment,
)
from orchestrator.schema.script import DialogueBeat, Framing

MAX_LINES_PER_SHOT = 6
MAX_TEXT_CHARS = 400
MAX_SHOT_SECONDS = 60.0
MAX_PROBLEMS_SHOWN = 25
FRAMING_COUNTS = {"close-up": (1, 1), "medium": (1, 2), "two-shot": (2, 2), "over-shoulder": (2, 2),
                  "wide": (0, 99)}
MARKER_RE = re.compile(r"<S>|<E>|<sub", re.I)
THINK_RE = re.compile(r"<think>.*?</think>", re.S | re.I)  # reasoning models served by Ollama/vLLM
FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


# ------------------------------------------------------------------------ the model-facing schema


class PlannedLine(PlanModel):
    line_id: str
    speaker: str
    text: str


class PlannedShot(PlanModel):
    scene: int
    framing: Framing
    camera: Camera
    characters: list[str]
    focus: Optional[str]
    action: str
    setting: str
    lines: list[PlannedLine]


class PlannedFilm(PlanModel):
    shots: list[PlannedShot]


def reply_schema() -> dict:
    """JSON schema of the reply, from the pydantic models (every field required: strict-mode safe)."""
    return PlannedFilm.model_json_schema()


def _speaker_id(project: Project, name: str) -> str:
    c = project.cast.lookup(name)
    return c.id if c else name


def screenplay_data(project: Project) -> dict:
    """The screenplay as the model sees it: scenes, who is in them, beats with line ids."""
    scenes = []
    for si, spec in enumerate(project.script.scenes, 1):
        beats, k = [], 0
        for beat in spec.beats:
            if isinstance(beat, DialogueBeat):
                k += 1
                item = {"line_id": line_id(si, k), "speaker": _speaker_id(project, beat.character),
                        "text": beat.line}
                if beat.parenthetical:
                    item["parenthetical"] = beat.parenthetical
                if beat.overlap:
                    item["overlap"] = True
                if beat.delivery != "on-screen":
                    item["delivery"] = beat.delivery
                if beat.shot:
                    item["framing_hint"] = beat.shot
                beats.append(item)
            else:
                beats.append({"action": beat.action})
        scenes.append({"index": si, "heading": spec.heading, "description": spec.description,
                       "characters": scene_characters(spec, project.cast), "beats": beats})
    return {"title": project.script.title, "scenes": scenes}


def parse_reply(text: str) -> tuple[Optional[PlannedFilm], list[str]]:
    """The reply's JSON object as a PlannedFilm, or the problems that stop it being one."""
    body = THINK_RE.sub("", text).strip()
    fenced = FENCE_RE.search(body)
    if fenced:
        body = fenced.group(1)
    start, end = body.find("{"), body.rfind("}")
    if start < 0:
        return None, ["the reply holds no JSON object; reply with the JSON object only"]
    try:
        # Up to the last brace, to drop chatter after the object; a cut-off reply has none.
        data = json.loads(body[start:end + 1] if end > start else body[start:])
    except json.JSONDecodeError as exc:
        return None, [f"the reply is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]
    try:
        return PlannedFilm.model_validate(data), []
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:MAX_PROBLEMS_SHOWN]:
            loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
            problems.append(f"{loc or 'reply'}: {err['msg']}")
        return None, problems


def film_problems(film: PlannedFilm, project: Project) -> list[str]:
    """Every rule the reply breaks, against the screenplay and cast."""
    errs: list[str] = []
    cast_ids = [c.id for c in project.cast.characters]
    scenes = project.script.scenes
    present = {si: scene_characters(s, project.cast) for si, s in enumerate(scenes, 1)}
    ref = _reference_lines(project)
    quoted = [(lid, r["text"].lower()) for lid, r in ref.items() if len(r["text"].split()) >= 3]
    last_scene = 0
    for i, shot in enumerate(film.shots):
        at = f"shots[{i}]"
        if not 1 <= shot.scene <= len(scenes):
            errs.append(f"{at}.scene: {shot.scene} is not a scene index (1..{len(scenes)})")
            continue
        if shot.scene < last_scene:
            errs.append(f"{at}.scene: shots must go in scene order (scene {shot.scene} after {last_scene})")
        last_scene = max(last_scene, shot.scene)
        for cid in shot.characters:
            if cid not in cast_ids:
                errs.append(f"{at}.characters: {cid!r} is not a cast id (cast ids: {', '.join(cast_ids)})")
            elif cid not in present[shot.scene]:
                errs.append(f"{at}.characters: {cid!r} is not in scene {shot.scene} "
                            f"(its characters: {', '.join(present[shot.scene])})")
        if len(set(shot.characters)) != len(shot.characters):
            errs.append(f"{at}.characters: a character is listed twice")
        lo, hi = FRAMING_COUNTS[shot.framing]
        if not lo <= len(shot.characters) <= hi:
            errs.append(f"{at}: a {shot.framing} holds {lo if lo == hi else f'{lo} to {hi}'} "
                        f"character(s), not {len(shot.characters)}")
        if shot.focus is not None and shot.focus not in shot.characters:
            errs.append(f"{at}.focus: {shot.focus!r} is not in frame")
        if len(shot.lines) > MAX_LINES_PER_SHOT:
            errs.append(f"{at}.lines: {len(shot.lines)} lines; split the shot (at most {MAX_LINES_PER_SHOT})")
        for field in ("action", "setting"):
            value = getattr(shot, field)
            if len(value) > MAX_TEXT_CHARS:
                errs.append(f"{at}.{field}: {len(value)} characters, more than {MAX_TEXT_CHARS}")
            if MARKER_RE.search(value):
                errs.append(f"{at}.{field}: contains a speech or anchor marker")
            low = value.lower()
            errs += [f"{at}.{field}: quotes dialogue line {lid}; describe, do not quote"
                     for lid, text in quoted if text in low]
        for c in project.cast.characters:
            if re.search(rf"\b({re.escape(c.name)}|{re.escape(c.trigger)}|{re.escape(c.id)})\b",
                         shot.setting, re.I):
                errs.append(f"{at}.setting: names character {c.id!r}; the setting names no one")
        for j, line in enumerate(shot.lines):
            delivery = ref.get(line.line_id, {}).get("delivery", "on-screen")
            if delivery != "on-screen" and line.speaker in shot.characters:
                errs.append(f"{at}.characters: {line.speaker!r} is heard {delivery} in {line.line_id}, "
                            f"so must not be in frame; hold on the listeners or the set")
            elif delivery == "on-screen" and line.speaker not in shot.characters:
                errs.append(f"{at}.lines[{j}]: speaker {line.speaker!r} of {line.line_id} is not in frame")
    errs += _coverage_problems(film, ref)
    for si in range(1, len(scenes) + 1):
        n = sum(s.scene == si for s in film.shots)
        if n == 0:
            errs.append(f"scene {si} has no shot; every scene needs at least one")
        elif n > MAX_SHOTS_PER_SCENE:
            errs.append(f"scene {si} has {n} shots; at most {MAX_SHOTS_PER_SCENE}")
    return errs


def _reference_lines(project: Project) -> dict[str, dict]:
    """line id -> text, speaker, parenthetical, overlap, scene, from the screenplay itself."""
    out = {}
    for scene in screenplay_data(project)["scenes"]:
        for beat in scene["beats"]:
            if "line_id" in beat:
                out[beat["line_id"]] = {**beat, "scene": scene["index"]}
    return out


def _coverage_problems(film: PlannedFilm, ref: dict[str, dict]) -> list[str]:
    """Lines covered once, in order, copied exactly, by their speaker; overlaps kept together."""
    errs = []
    got = [(i, line) for i, shot in enumerate(film.shots) for line in shot.lines]
    ids = [line.line_id for _, line in got]
    expected = list(ref)
    if ids != expected:
        missing = [lid for lid in expected if lid not in ids]
        extra = sorted({lid for lid in ids if lid not in ref})
        twice = sorted({lid for lid in ids if ids.count(lid) > 1 and lid in ref})
        if missing:
            errs.append(f"lines {', '.join(missing)} are not covered; cover every line once")
        if extra:
            errs.append(f"lines {', '.join(extra)} are not in the screenplay; never add lines")
        if twice:
            errs.append(f"lines {', '.join(twice)} are covered more than once")
        if not (missing or extra or twice):
            errs.append(f"lines are out of screenplay order; expected {', '.join(expected)}")
    shot_of = {}
    for i, line in got:
        r = ref.get(line.line_id)
        if r is None:
            continue
        shot_of[line.line_id] = i
        if line.text != r["text"]:
            errs.append(f"line {line.line_id}: text differs from the screenplay; copy it exactly: "
                        f"{json.dumps(r['text'], ensure_ascii=False)}")
        if line.speaker != r["speaker"]:
            errs.append(f"line {line.line_id}: speaker is {r['speaker']!r} in the screenplay, "
                        f"not {line.speaker!r}")
        if film.shots[i].scene != r["scene"]:
            errs.append(f"line {line.line_id}: belongs to scene {r['scene']}, not {film.shots[i].scene}")
    for k, lid in enumerate(expected[1:], 1):
        if ref[lid].get("overlap") and lid in shot_of and shot_of.get(expected[k - 1]) != shot_of[lid]:
            errs.append(f"line {lid} overlaps {expected[k - 1]} and must be in the same shot")
    return errs


def build_shot_plan(film: PlannedFilm, project: Project) -> ShotPlan:
    """The full ShotPlan (ids, speech segments, timing, omni-captions) from a checked reply."""
    ref = _reference_lines(project)
    scenes = [
        SceneInfo(index=si, heading=spec.heading, description=spec.description,
                  background=str(spec.background) if spec.background else None,
                  characters=scene_characters(spec, project.cast))
        for si, spec in enumerate(project.script.scenes, 1)
    ]
    shots: list[Shot] = []
    counts: dict[int, int] = {}
    for planned in film.shots:
        counts[planned.scene] = counts.get(planned.scene, 0) + 1
        # Text, parenthetical and overlap come from the screenplay (the reply's text was checked equal).
        speech = [
            SpeechSegment(line_id=ln.line_id, speaker=ln.speaker, text=ref[ln.line_id]["text"],
                          parenthetical=ref[ln.line_id].get("parenthetical"),
                          overlap=bool(ref[ln.line_id].get("overlap")),
                          duration=round(estimate_speech_seconds(ln.text), 3),
                          delivery=ref[ln.line_id].get("delivery", "on-screen"))
            for ln in planned.lines
        ]
        draft = Shot(id=f"sc{planned.scene:02d}_sh{counts[planned.scene]:02d}", scene=planned.scene,
                     framing=planned.framing, camera=planned.camera, characters=planned.characters,
                     focus=planned.focus, action=planned.action.strip(), speech=speech, duration=1.0,
                     caption=OmniCaption(anchors=[], scene="", parts=[]))
        shot = retime_shot(draft, {})
        caption = build_caption(shot, project.cast, scenes[planned.scene - 1])
        setting = planned.setting.strip().rstrip(".")
        if setting:
            caption = caption.model_copy(update={"scene": f"{planned.framing}, {setting}."})
        shots.append(shot.model_copy(update={"caption": caption, "caption_text": caption.render()}))
    return ShotPlan(title=project.script.title, scenes=scenes, shots=shots)


def plan_problems(plan: ShotPlan, project: Project) -> list[str]:
    """Problems of a built plan: the omni-caption rules and sane durations."""
    lines = screenplay_lines(project)
    errs = [p for shot in plan.shots for p in caption_problems(shot, project.cast, lines)]
    errs += [f"{s.id}: lasts {s.duration:.1f}s, more than {MAX_SHOT_SECONDS:g}s; split it"
             for s in plan.shots if s.duration > MAX_SHOT_SECONDS]
    return errs


def plan_from_reply(text: str, project: Project) -> tuple[Optional[ShotPlan], list[str]]:
    """Check a reply end to end; a plan only when no rule is broken."""
    film, errs = parse_reply(text)
    if film is None:
        return None, errs
    errs = film_problems(film, project)
    if errs:
        return None, errs[:MAX_PROBLEMS_SHOWN]
    try:
        plan = build_shot_plan(film, project)
    except ValidationError as exc:  # a limit of the plan models the checks above did not foresee
        return None, [f"the plan cannot be built: {e['msg']}" for e in exc.errors()[:MAX_PROBLEMS_SHOWN]]
    errs = plan_problems(plan, project)
    return (None, errs[:MAX_PROBLEMS_SHOWN]) if errs else (plan, [])
