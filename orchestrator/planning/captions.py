"""The omni-caption: built for a shot from its characters and lines, and validated.

Every shot carries an omni-caption (DESIGN.md): anchors `<subN>` for the characters present, scene
text that names characters only through anchors, and speech spans `<S>..<E>` each attributed to
exactly one anchor. `build_caption` makes one; `caption_problems` is the validator every plan
passes before anything is rendered, whatever planner made it.
"""
from __future__ import annotations

import re
from typing import Optional

from orchestrator.planning.timing import expected_text
from orchestrator.schema.cast import Cast
from orchestrator.schema.plan import Anchor, CaptionPart, OmniCaption, SceneInfo, Shot

ANCHOR_RE = re.compile(r"<sub[0-9]+>")


def caption_problems(shot: Shot, cast: Cast, lines: Optional[dict[str, str]] = None) -> list[str]:
    """Check one shot's omni-caption against the rules in DESIGN.md; return the violations.

    `lines` maps line ids to the screenplay's text; when given, speech must equal it exactly.
    """
    errs: list[str] = []
    cap = shot.caption
    ids = {c.id for c in cast.characters}
    tokens = {}
    heard = {seg.speaker for seg in shot.speech if seg.off_screen}
    for a in cap.anchors:
        if a.character not in ids:
            errs.append(f"{shot.id}: anchor {a.token} names {a.character!r}, who is not in the cast")
        if a.off_screen and (a.character in shot.characters or a.character not in heard):
            errs.append(f"{shot.id}: off-screen anchor {a.token} names {a.character!r}, who is not "
                        f"an off-screen speaker of the shot")
        if not a.off_screen and a.character not in shot.characters:
            errs.append(f"{shot.id}: anchor {a.token} names {a.character!r}, who is not in the shot")
        if a.token in tokens:
            errs.append(f"{shot.id}: anchor {a.token} is used for two characters")
        tokens[a.token] = a.character
    for c in shot.characters:
        if c not in tokens.values():
            errs.append(f"{shot.id}: character {c!r} is in the shot but has no anchor")
    names = {c.name.lower() for c in cast.characters} | {c.trigger.lower() for c in cast.characters}
    speech_parts = [p for p in cap.parts if p.kind == "speech"]
    for p in cap.parts:
        if p.kind == "text":
            if "<S>" in p.text or "<E>" in p.text:
                errs.append(f"{shot.id}: narrative text contains a speech marker")
            for word in re.findall(r"[A-Za-z][A-Za-z'-]+", p.text):
                if word.lower() in names and word.isupper():
                    errs.append(f"{shot.id}: scene text names {word!r} directly; use its anchor")
            for tok in ANCHOR_RE.findall(p.text):
                if tok not in tokens:
                    errs.append(f"{shot.id}: scene text uses unknown anchor {tok}")
        else:
            if p.anchor not in tokens:
                errs.append(f"{shot.id}: speech span has no single known speaker anchor ({p.anchor!r})")
            if "<S>" in p.text or "<E>" in p.text or ANCHOR_RE.search(p.text):
                errs.append(f"{shot.id}: speech span contains markers or anchors (caption leak)")
    if len(speech_parts) != len(shot.speech):
        errs.append(f"{shot.id}: {len(speech_parts)} speech spans but {len(shot.speech)} speech segments")
    for p, seg in zip(speech_parts, shot.speech):
        if tokens.get(p.anchor) != seg.speaker:
            errs.append(f"{shot.id}: span for line {seg.line_id} is attributed to the wrong anchor")
        if p.text != seg.text:
            errs.append(f"{shot.id}: span text differs from line {seg.line_id}")
        if lines is not None and expected_text(lines, seg.line_id) != seg.text:
            errs.append(f"{shot.id}: line {seg.line_id} differs from the screenplay")
        if p.off_screen != seg.off_screen:
            errs.append(f"{shot.id}: span for line {seg.line_id} must be marked "
                        f"{'off-screen' if seg.off_screen else 'on-screen'}")
        if seg.off_screen and seg.speaker in shot.characters:
            errs.append(f"{shot.id}: {seg.speaker!r} speaks {seg.line_id} from off screen "
                        f"({seg.delivery}) but is in the shot")
        if not seg.off_screen and seg.speaker not in shot.characters:
            errs.append(f"{shot.id}: speaker {seg.speaker!r} of {seg.line_id} is not in the shot")
    if shot.caption_text and shot.caption_text != cap.render():
        errs.append(f"{shot.id}: caption_text is not the rendering of the caption")
    return errs


def heading_parts(heading: str) -> tuple[str, str]:
    """Split `INT. PRISON YARD - DUSK` into ("prison yard", "dusk")."""
    h = re.sub(r"^(INT\./EXT\.|INT/EXT|I/E|INT\.?|EXT\.?|EST\.?)\s*", "", heading.strip().lstrip("."), flags=re.I)
    place, _, time = h.partition(" - ")
    return place.strip().lower() or "somewhere", time.strip().lower() or "day"


def _label_and_visual(description: str, name: str, trigger: str) -> tuple[str, str]:
    """Split a description into a short natural label and the remaining visual details."""
    first, _, rest = description.strip().partition(",")
    label = f"{first.strip() or 'a person'} ({trigger})"
    return label, rest.strip() or first.strip() or name


def _anchorize(text: str, cast: Cast, tokens: dict[str, str]) -> str:
    """Replace character names in narrative text by their anchors (or 'someone' when absent)."""
    for c in cast.characters:
        repl = tokens.get(c.id, "someone")
        for name in {c.name, c.trigger}:
            text = re.sub(rf"\b{re.escape(name)}\b", repl, text, flags=re.I)
    return text


def build_caption(shot: Shot, cast: Cast, scene: SceneInfo) -> OmniCaption:
    """The omni-caption of a shot: anchors, scene text, narrative parts and speech spans."""
    heard = [s.speaker for s in shot.speech if s.off_screen and s.speaker not in shot.characters]
    present = list(dict.fromkeys(list(shot.characters) + heard))
    tokens = {cid: f"<sub{i}>" for i, cid in enumerate(present, 1)}
    anchors = []
    for cid, tok in tokens.items():
        c = cast.by_id(cid)
        label, visual = _label_and_visual(c.description, c.name, c.trigger)
        anchors.append(
            Anchor(
                token=tok,
                character=cid,
                label=label,
                visual=visual,
                voice=c.voice.description or "natural",
                off_screen=cid not in shot.characters,
            )
        )
    place, time = heading_parts(scene.heading)
    parts: list[CaptionPart] = []
    if shot.action:
        parts.append(CaptionPart(kind="text", text=_anchorize(shot.action, cast, tokens)))
    for seg in shot.speech:
        if seg.parenthetical:
            parts.append(CaptionPart(kind="text", text=f"{tokens[seg.speaker]} ({seg.parenthetical.strip('() ')})"))
        parts.append(CaptionPart(kind="speech", text=seg.text, anchor=tokens[seg.speaker],
                                 off_screen=seg.off_screen))
    return OmniCaption(anchors=anchors, scene=f"{shot.framing}, {time}, {place}.", parts=parts)
