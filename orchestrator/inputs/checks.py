"""The checks `orchestrator.inputs.loading` runs on a loaded script and cast, each finding a located
`Problem`.

They read the raw data (plain dicts and lists), defensively, so one malformed entry does not hide
the problems of the others; pydantic reports the malformed entry itself. Checks that resolve a
name write the result back (speaker names become cast ids). The files the inputs name are checked by
`orchestrator.inputs.assets`.
"""
from __future__ import annotations

import types
from typing import Any, Optional, Union, get_args, get_origin

from pydantic import BaseModel

from orchestrator.inputs.problems import Problem, Source
from orchestrator.planning import PLANNERS
from orchestrator.schema.plan import MAX_SCENES, MAX_SHOTS_PER_SCENE
from orchestrator.schema.script import DELIVERIES, FRAMINGS
from tools.media.packaged import EN_PACKS, MAX_BLEND, OWN_VOICE, pack_blend

# `voice.base` in the cast: piper's joe, hibari's heart, Kokoro's English packs (`tools.speech.piper.pinned_base`),
# or a blend of packs joined by "+" (`tools.media.packaged.pack_blend`).
VOICE_BASES = ("joe", "heart", OWN_VOICE, *EN_PACKS)
MAX_BEATS = MAX_SHOTS_PER_SCENE - 2  # room for an establishing shot, one per beat, a closing shot
BEAT_FORMS = {"DialogueBeat": "dialogue beat", "ActionBeat": "action beat"}
BEAT_FIX = "a beat is either `- action: ...` or `- character: NAME` with `line: ...`"
FIELD_FIXES = {
    "sample_rate": "use 24000, or one of the listed rates",
    "shot": f"use one of: {', '.join(FRAMINGS)}",
    "face_box": "give face_box as [x, y, width, height] in pixels, width and height > 0",
    "mouth": "give mouth as [x, y] in pixels: where the lips part in the reference image",
    "delivery": f"use one of: {', '.join(DELIVERIES)} (Fountain: a (O.S.) or (V.O.) cue)",
    "id": "use lower-case letters, digits and _, starting with a letter (e.g. `collins`)",
    "images": "list one or more reference images, e.g. `images: [assets/images/me.png]`",
    "beats": "give every scene at least one beat: an action or a line of dialogue",
    "overlap": "use `overlap: true` on a line spoken over the previous one, or leave it out",
    "address": "use auto, HOST:PORT or ray://HOST:PORT (e.g. 10.0.0.5:6379, the head node's `ray start` port)",
    "voice": "give `reference: voices/name.wav` and `transcript: ...` (its exact words), or `takes:`, a list of them",
}
TAKES_FIX = ("give one clip as `reference` with its `transcript`, or several as `takes:` (a list of `- reference: "
             "...` with `transcript: ...`), not both")
TYPE_FIXES = {
    "string_type": "write it as text (quote it if YAML reads it as a number, date or yes/no)",
    "int_type": "give a whole number", "int_parsing": "give a whole number",
    "int_from_float": "give a whole number",
    "float_type": "give a number", "float_parsing": "give a number",
    "bool_type": "use true or false", "bool_parsing": "use true or false",
    "list_type": "write it as a list, e.g. [a, b]", "tuple_type": "write it as a list, e.g. [a, b]",
    "string_too_short": "write some text here", "too_short": "give at least one item",
    "greater_than_equal": "give a larger number", "less_than_equal": "give a smaller number",
    "path_type": "give a file path as text",
}


def pinnable(base: object) -> bool:
    """Whether a cast may write `base` as `voice.base`."""
    return isinstance(base, str) and (base in VOICE_BASES or bool(pack_blend(base)))


# ------------------------------------------------------------------------------ schema errors


def _step(tp: Any, part: Any) -> Any:
    """The type one step down a pydantic error path (field, list item or union member)."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Union or origin is types.UnionType:
        options = [a for a in args if a is not type(None)]
        named = [a for a in options if getattr(a, "__name__", None) == part]
        if named:
            return named[0]
        return _step(options[0], part) if len(options) == 1 else None
    if origin in (list, tuple):
        return args[0] if isinstance(part, int) else None
    if isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
        return tp.model_fields[part].annotation
    return None


def _model_at(model: type[BaseModel], loc: tuple) -> Optional[type[BaseModel]]:
    tp: Any = model
    for part in loc:
        tp = _step(tp, part)
    tp = _step(tp, None) if get_origin(tp) in (Union, types.UnionType) else tp
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def allowed_range(owner: Optional[type[BaseModel]], name: str) -> str:
    """"use a value from 8 to 60" from a numeric field's bounds; "" when it has none."""
    field = owner.model_fields.get(name) if owner is not None else None
    if field is None:
        return ""
    lo = hi = None
    for m in field.metadata:
        lo = getattr(m, "ge", getattr(m, "gt", lo))
        hi = getattr(m, "le", getattr(m, "lt", hi))
    if lo is None and hi is None:
        return ""
    if lo is not None and hi is not None:
        return f"use a value from {lo} to {hi}"
    return f"use a value of at least {lo}" if lo is not None else f"use a value of at most {hi}"


def _beat_form(beat: Any) -> Optional[str]:
    """Which beat form the keys ask for: an `action` key makes an action, `character` or
    `line` a dialogue line; anything else is neither."""
    if isinstance(beat, dict):
        if "action" in beat:
            return "ActionBeat"
        if "character" in beat or "line" in beat:
            return "DialogueBeat"
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def schema_problem(model: type[BaseModel], src: Source, err: dict, bad_beats: set) -> Optional[Problem]:
    """Turn one pydantic error into a located problem; None when it belongs to the beat form the
    writer did not choose (pydantic tries a beat against both forms)."""
    tagged = loc = tuple(err["loc"])
    where = ""
    for k, part in enumerate(loc):
        if part in BEAT_FORMS and k and isinstance(loc[k - 1], int):
            chosen = _beat_form(src.get(loc[:k]))
            if chosen is None:
                if loc[:k] in bad_beats:
                    return None
                bad_beats.add(loc[:k])
                beat = src.get(loc[:k])
                got = f"keys {', '.join(map(str, beat))}" if isinstance(beat, dict) else _shown(beat)
                return src.problem(loc[:k], f"beat is neither an action nor a dialogue line (got {got})",
                                   BEAT_FIX, value=False)
            if part != chosen:
                return None
            where = BEAT_FORMS[part] + ": "
            loc = loc[:k] + loc[k + 1:]
            break
    name = next((p for p in reversed(loc) if isinstance(p, str)), "")
    kind = err["type"]
    if kind == "extra_forbidden":
        owner = _model_at(model, tagged[:-1])
        allowed = ", ".join(owner.model_fields) if owner else ""
        fix = f"remove it, or use one of: {allowed}" if allowed else "remove it"
        if where:
            fix += f" ({BEAT_FIX})"
        return src.problem(loc, f"{where}unknown key `{loc[-1]}`", fix, value=False)
    if kind == "missing":
        fix = f"add `{name}: ...`"
        if where:
            fix += f" ({BEAT_FIX})"
        return src.problem(loc[:-1], f"{where}missing required key `{name}`", fix, value=False)
    what = f"`{name}` item {loc[-1] + 1}" if loc and isinstance(loc[-1], int) else f"`{name}`"
    msg = err["msg"].removeprefix("Value error, ")
    got = f" (got {_shown(err['input'])})" if not isinstance(err.get("input"), (dict, list)) else ""
    fix = FIELD_FIXES.get(name) or allowed_range(_model_at(model, tagged[:-1]), name) or TYPE_FIXES.get(kind) \
        or "see the format in the README"
    if kind in ("model_type", "dict_type") and _model_at(model, tagged):
        fix = f"write it as a mapping with the keys: {', '.join(_model_at(model, tagged).model_fields)}"
    return src.problem(loc, f"{where}{what}: {msg}{got}", fix)


# ------------------------------------------------------------------------------- cast, script


class Roster:
    """The cast's characters as found in the raw cast file, looked up like `Cast.lookup`."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, str]] = []  # id, name, trigger

    def find(self, name: str) -> Optional[str]:
        key = name.strip().lower()
        for cid, cname, trigger in self.entries:
            if key in (cid.lower(), cname.lower(), trigger.lower()):
                return cid
        return None

    def listing(self) -> str:
        return ", ".join(f"{cid} ({trigger})" for cid, _, trigger in self.entries) or "(the cast is empty)"


def cast_problems(cast: Source, problems: list[Problem]) -> Roster:
    """Ids, names and triggers must not collide (a cue could match two characters)."""
    roster = Roster()
    seen: dict[str, tuple[int, str, str]] = {}  # lower-cased word -> (index, field, id)
    chars = cast.get(("characters",))
    for i, c in enumerate(chars if isinstance(chars, list) else []):
        if not isinstance(c, dict) or not isinstance(c.get("id"), str):
            continue
        cid = c["id"]
        for field in ("id", "name", "trigger"):
            word = c.get(field)
            if not isinstance(word, str) or not word.strip():
                continue
            first = seen.setdefault(word.strip().lower(), (i, field, cid))
            if first[0] != i:
                line = cast.at(("characters", first[0], first[1]))[0]
                problems.append(cast.problem(
                    ("characters", i, field),
                    f"{field} {word!r} is already the {first[1]} of character {first[2]!r} (line {line})",
                    "give every character a distinct id, name and trigger"))
        voice = c.get("voice") if isinstance(c.get("voice"), dict) else {}
        both = [k for k in ("reference", "transcript") if k in voice]
        if "takes" in voice and both:
            problems.append(cast.problem(("characters", i, "voice", both[0]), f"`{both[0]}` beside `takes`",
                                         TAKES_FIX, value=False))
        base = voice.get("base")
        if isinstance(base, str) and not pinnable(base):  # a base that is not text: the schema says so
            problems.append(cast.problem(("characters", i, "voice", "base"), f"unknown base voice {base!r}",
                                         f"one of {', '.join(VOICE_BASES)}, a blend of two or {MAX_BLEND} distinct "
                                         "Kokoro packs joined by '+' (e.g. am_adam+am_michael), or leave `base` out "
                                         "to let the fit choose"))
        name, trigger = c.get("name"), c.get("trigger")
        roster.entries.append((cid, name if isinstance(name, str) else cid,
                               trigger if isinstance(trigger, str) else cid))
    return roster


def script_problems(script: Source, roster: Optional[Roster], problems: list[Problem]) -> None:
    """Speakers and scene characters exist in the cast (and become ids), lines have words,
    overlaps follow another speaker's line, backends exist."""
    scenes = script.get(("scenes",))
    if isinstance(scenes, list) and len(scenes) > MAX_SCENES:
        problems.append(script.problem(("scenes", MAX_SCENES), f"a film holds at most {MAX_SCENES} scenes "
                                       f"(this one has {len(scenes)})", "split the screenplay into several films",
                                       value=False))
    for si, scene in enumerate(scenes if isinstance(scenes, list) else []):
        if not isinstance(scene, dict):
            continue
        if isinstance(scene.get("beats"), list) and len(scene["beats"]) > MAX_BEATS:
            problems.append(script.problem(("scenes", si, "beats", MAX_BEATS),
                                           f"a scene holds at most {MAX_BEATS} beats (this one has "
                                           f"{len(scene['beats'])})", "start a new scene heading here",
                                           value=False))
        listed = None
        names = scene.get("characters")
        if isinstance(names, list) and roster is not None:
            listed = set()
            for k, who in enumerate(names):
                cid = roster.find(who) if isinstance(who, str) else None
                if isinstance(who, str) and cid is None:
                    problems.append(script.problem(("scenes", si, "characters", k),
                                                   f"scene character {who!r} is not in the cast",
                                                   f"use one of: {roster.listing()}"))
                elif cid is not None:
                    names[k] = cid
                    listed.add(cid)
        beats = scene.get("beats")
        if isinstance(beats, list):
            _beat_problems(script, si, beats, roster, listed, problems)
    _render_problems(script, problems)


def _beat_problems(script: Source, si: int, beats: list, roster: Optional[Roster],
                   listed: Optional[set], problems: list[Problem]) -> None:
    previous = None  # who spoke the scene's last dialogue line
    for bi, beat in enumerate(beats):
        loc = ("scenes", si, "beats", bi)
        if _beat_form(beat) == "ActionBeat":
            text = beat["action"]
            if isinstance(text, str) and text and not text.strip():
                problems.append(script.problem(loc + ("action",), "action text is blank",
                                               "describe what happens, or remove the beat"))
            continue
        if _beat_form(beat) is None:
            continue
        who, line = beat.get("character"), beat.get("line")
        speaker = who.strip().lower() if isinstance(who, str) else None
        if isinstance(who, str) and roster is not None:
            speaker = roster.find(who)
            if speaker is None:
                problems.append(script.problem(
                    loc + ("character",), f"unknown speaker {who!r}",
                    f"use a cast member's id, name or trigger: {roster.listing()}; or add {who!r} to the cast"))
            else:
                beat["character"] = speaker
                if listed is not None and speaker not in listed:
                    problems.append(script.problem(
                        loc + ("character",), f"{who!r} speaks but is not in the scene's `characters`",
                        f"add {speaker} to this scene's `characters` list"))
        if isinstance(line, str) and not any(ch.isalnum() for ch in line):
            problems.append(script.problem(
                loc + ("line",), f"dialogue line {line!r} is empty or only punctuation",
                "write the words to speak; put stage directions in `parenthetical` or an action beat"))
        if beat.get("overlap") is True:
            if bi == 0 or previous is None:
                first = "the first beat of a scene" if bi == 0 else "a line with no dialogue line before it"
                problems.append(script.problem(
                    loc + ("overlap",), f"`overlap: true` on {first}: there is no line to overlap",
                    "remove `overlap` here; it marks a line spoken over the previous dialogue line", value=False))
            elif speaker is not None and speaker == previous:
                problems.append(script.problem(
                    loc + ("overlap",), f"{who!r} cannot overlap their own previous line",
                    "remove `overlap`, or give the overlapping line to another character", value=False))
        previous = speaker if speaker is not None else previous


def _render_problems(script: Source, problems: list[Problem]) -> None:
    from tools import registry

    render = script.get(("render",))
    if not isinstance(render, dict):
        return
    tables = (("planner", "planner", PLANNERS), ("speech", "speech backend", registry.SPEECH),
              ("video", "video backend", registry.VIDEO))
    for key, what, table in tables:
        name = render.get(key)
        if isinstance(name, str) and name not in table:
            problems.append(script.problem(("render", key), f"unknown {what} {name!r}",
                                           f"choose one of: {', '.join(sorted(table))}"))
    evaluators = render.get("evaluators")
    for k, name in enumerate(evaluators if isinstance(evaluators, list) else []):
        if isinstance(name, str) and name not in registry.EVALUATORS:
            problems.append(script.problem(("render", "evaluators", k), f"unknown evaluator {name!r}",
                                           f"choose from: {', '.join(sorted(registry.EVALUATORS))}"))
