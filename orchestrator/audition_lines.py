"""Which characters, and which of their lines, `compose voices` hears.

By default every speaking character's first lines (`sample_lines`). `--character` narrows the audition to
some characters (`chosen_characters`); `--line` names the lines themselves (`chosen_lines`): a line's id as
the audition's table prints it (`sc02_l04`), or words from it, so that a writer can hear the one line they
worry about (a name, a number, a long speech) rather than the character's first two. The characters not
heard now keep their last hearing in voices.json (`carried`).
"""
from __future__ import annotations

import difflib
import re

from orchestrator.inputs.project import Project
from orchestrator.planning.rules import dialogue_beats, screenplay_lines
from orchestrator.planning.timing import PART_RE
from orchestrator.schema.plan import ShotPlan, SpeechSegment
from tools.base import ToolError

SHOWN = 5  # matches listed when words name more than one line


def sample_lines(plan: ShotPlan, per_character: int) -> dict[str, list[SpeechSegment]]:
    """Each speaker's first `per_character` distinct lines (or parts of a long line), in plan order."""
    out: dict[str, list[SpeechSegment]] = {}
    for shot in plan.shots:
        for seg in shot.speech:
            mine = out.setdefault(seg.speaker, [])
            if len(mine) < per_character and seg.text not in {s.text for s in mine}:
                mine.append(seg)
    return out


def chosen_characters(project: Project, samples: dict[str, list], only: tuple[str, ...]) -> list[str]:
    """The ids of the characters `--character` names (by id, name or cue, in any case: `cast.lookup`), each
    checked: a character of the cast who speaks in the script."""
    ids, chosen = [c.id for c in project.cast.characters], []
    for given in only:
        found = project.cast.lookup(given)
        if found is None:
            near = difflib.get_close_matches(given.lower(), ids, n=1)
            raise ToolError(f"--character {given}: {project.cast_path} has no character {given!r}"
                            + (f" (did you mean {near[0]}?)" if near else ""),
                            f"give a character's `id` from the cast: {', '.join(ids)}")
        if found.id not in samples:
            raise ToolError(f"--character {given}: {found.id} speaks no line in {project.script_path}, so there is "
                            "nothing to audition",
                            f"give one of the characters who speak: {', '.join(samples) or 'none'}")
        chosen.append(found.id)
    return list(dict.fromkeys(chosen))


def base_id(segment_id: str) -> str:
    """The screenplay line a segment speaks: its own id, or the line a part was cut from (`sc01_l03-2of3`)."""
    m = PART_RE.match(segment_id)
    return m["base"] if m else segment_id


def _words(text: str) -> str:
    """`text` as matched: lower case, punctuation dropped, one space between words."""
    return " ".join(re.sub(r"[^\w']+", " ", text.lower()).split())


def line_places(project: Project) -> dict[str, int]:
    """Line id -> the script's line where its beat begins, where the loader recorded it."""
    return {lid: where[1] for lid, si, bi, _ in dialogue_beats(project)
            if (where := project.locations.get(f"beat:{si}:{bi}"))}


def chosen_lines(project: Project, plan: ShotPlan, given: tuple[str, ...]) -> dict[str, list[SpeechSegment]]:
    """Speaker id -> the segments of the lines `--line` names, in plan order, each line once: a line's id (any
    case; every part of a cut line), or words it says (a line whose words, punctuation aside, contain them).
    Words said by lines of different text are refused, the lines listed; a repeated line is heard once."""
    lines = screenplay_lines(project)
    spoken: dict[str, list[SpeechSegment]] = {}
    for shot in plan.shots:
        for seg in shot.speech:
            spoken.setdefault(base_id(seg.line_id), []).append(seg)
    said = {lid: _words(lines[lid]) for lid in spoken}  # as matched
    places = line_places(project)

    def shown(lid: str) -> str:
        text = lines[lid] if len(lines[lid]) <= 48 else lines[lid][:45] + "..."
        return f"{lid} ({f'line {places[lid]}, ' if lid in places else ''}{spoken[lid][0].speaker}: {text!r})"

    wanted: list[str] = []
    for asked in given:
        if base_id(asked.lower()) in spoken:  # an id, or a part's: the whole line
            wanted.append(base_id(asked.lower()))
            continue
        key = _words(asked)
        found = [lid for lid in spoken if key and key in said[lid]]
        if len({said[lid] for lid in found}) > 1:
            listed = "; ".join(shown(lid) for lid in found[:SHOWN]) + ("; ..." if len(found) > SHOWN else "")
            raise ToolError(f"--line {asked!r}: {len(found)} lines of {project.script_path} say it: {listed}",
                            "give more of the line's words, or its id")
        if not found:
            near = difflib.get_close_matches(key, list(said.values()), n=1, cutoff=0.5)
            hint = next((f" (did you mean {shown(lid)}?)" for lid in spoken if near and said[lid] == near[0]), "")
            raise ToolError(f"--line {asked!r}: no line of {project.script_path} says it{hint}",
                            "give a line's id (sc02_l04: scene 2's fourth line; `compose plan` prints them) or "
                            "words from the line")
        wanted.append(found[0])
    out: dict[str, list[SpeechSegment]] = {}
    heard: set[str] = set()
    for lid in spoken:  # plan order
        if lid in wanted and said[lid] not in heard:
            heard.add(said[lid])
            for seg in spoken[lid]:
                out.setdefault(seg.speaker, []).append(seg)
    return out


def carried(before: dict | None, now: list[str], digests: dict[str, str], speaking: list[str]) -> list[dict]:
    """The last audition's entries of the speaking characters not auditioned `now` (`--character`, `--line`) whose
    reference clip is still the one heard (`digests`), each marked with when it was heard: voices.json keeps
    the whole cast, and the next audition compares each voice with its last hearing. An entry an older
    audition carried keeps its first time."""
    if before is None:
        return []
    return [{**c, "carried_from": c.get("carried_from") or before["written"]} for c in before["characters"]
            if c["id"] in speaking and c["id"] not in now and c.get("reference_sha256") == digests.get(c["id"])]
