"""A Fountain screenplay parser (https://fountain.io/syntax): text to located elements to script data.

`parse_fountain` turns the text into a title page and a flat list of `Element`s (scene headings,
action, character cues, parentheticals, dialogue, lyrics, transitions, centered text), each with the
1-based line and column it starts at. Notes `[[ ]]`, boneyard `/* */`, sections `#`, synopses `=`
and page breaks `===` are dropped before classification, without shifting line numbers; a synopsis
right under a scene heading is kept as that scene's description.

`fountain_script_data` folds the elements into the plain dict that `ScriptSpec` validates (scenes of
action and dialogue beats), plus the source location of every scene, beat and field, so errors found
later point at the right line of the `.fountain` file. Transitions carry no beat: shots cut by default.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

HEADING_RE = re.compile(r"^(int|ext|est|int\.?/ext|i\.?/e)[.\s]", re.IGNORECASE)
SCENE_NUMBER_RE = re.compile(r"\s*#([\w.\-]+)#\s*$")
PAGE_BREAK_RE = re.compile(r"^={3,}$")
# Transitions that do not end in "TO:": the reference parser's tests expect FADE TO BLACK.; the
# FADE IN: and FADE OUT. that open and close most scripts would otherwise become action.
TRANSITION_WORDS = ("FADE IN:", "FADE OUT.", "FADE TO BLACK.", "FADE TO:")
# Title-page keys written in capitals; any key with a lower-case letter ("Draft date") also counts,
# while an all-caps "CUT TO:" at the top of a script stays a transition.
TITLE_KEYS = {
    "title", "credit", "author", "authors", "source", "draft date", "date", "contact", "copyright",
    "notes", "revision", "cast",
}
EMPHASIS_RE = re.compile(r"(\*{1,3}|_)(?=\S)(.+?)(?<=\S)\1")


@dataclass
class Element:
    """One screenplay element; `line`/`col` are 1-based and point at its first character."""

    kind: str  # scene_heading | action | character | parenthetical | dialogue | lyrics | transition | centered
    text: str
    line: int
    col: int = 1
    # character: name (cue without extensions), extensions ["V.O.", ...], dual (the ^ marker),
    # forced (@); scene_heading: forced (.), number ("1A") from #1A#, synopsis (the `=` line under it).
    extra: dict = field(default_factory=dict)


@dataclass
class FountainDocument:
    title_page: dict[str, str]  # lower-case key -> value (multi-line values joined with newlines)
    title_lines: dict[str, int]  # lower-case key -> line number
    elements: list[Element]


# ------------------------------------------------------------------------------- preprocessing


def _strip_spans(text: str, opener: str, closer: str, removed: set[int]) -> str:
    """Blank out every opener..closer span (possibly multi-line), keeping the newlines so line
    numbers stay put; remember the lines a span touched."""
    out, i = [], 0
    while True:
        start = text.find(opener, i)
        if start < 0:
            out.append(text[i:])
            break
        end = text.find(closer, start + len(opener))
        if end < 0:  # unterminated: Fountain treats it as literal text
            out.append(text[i:])
            break
        out.append(text[i:start])
        span = text[start:end + len(closer)]
        first = text.count("\n", 0, start)
        removed.update(range(first, first + span.count("\n") + 1))
        out.append("\n" * span.count("\n"))
        i = end + len(closer)
    return "".join(out)


def _clean_lines(text: str) -> tuple[list[Optional[str]], dict[int, str]]:
    """Lines with notes, boneyard, sections, synopses and page breaks removed. A line that held
    only such markup becomes None (gone, not blank: it must not split a dialogue block).
    Also returns the synopses by 1-based line number."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").expandtabs(4)
    touched: set[int] = set()
    text = _strip_spans(text, "/*", "*/", touched)
    text = _strip_spans(text, "[[", "]]", touched)
    lines: list[Optional[str]] = []
    synopses: dict[int, str] = {}
    for i, line in enumerate(text.split("\n")):
        s = line.strip()
        if s.startswith("=") and not s.startswith("=="):
            synopses[i + 1] = s[1:].strip()
            lines.append(None)
        elif (i in touched and not s) or s.startswith("#") or PAGE_BREAK_RE.match(s):
            lines.append(None)
        else:
            # An inline note or boneyard leaves a double space behind.
            lines.append(re.sub(r"(?<=\S) {2,}(?=\S)", " ", line) if i in touched else line)
    return lines, synopses


def _title_page(lines: list[Optional[str]]) -> tuple[dict[str, str], dict[str, int], int]:
    """Parse a leading title page (`Key: value` lines, indented continuation lines); return the
    keys, their line numbers and the index of the first body line."""
    start = next((i for i, ln in enumerate(lines) if ln is not None and ln.strip()), None)
    if start is None:
        return {}, {}, 0
    m = re.match(r"^([A-Za-z][A-Za-z ]*):(.*)$", lines[start])
    if not m or (m.group(1).strip().lower() not in TITLE_KEYS and m.group(1).isupper()):
        return {}, {}, 0
    page: dict[str, str] = {}
    where: dict[str, int] = {}
    key = None
    i = start
    while i < len(lines) and (lines[i] is None or lines[i].strip()):
        ln = lines[i]
        if ln is not None:
            m = re.match(r"^([A-Za-z][A-Za-z ]*):(.*)$", ln)
            if m and not ln[:1].isspace():
                key = m.group(1).strip().lower()
                page[key] = m.group(2).strip()
                where[key] = i + 1
            elif key is not None:
                page[key] = (page[key] + "\n" + ln.strip()).strip()
        i += 1
    return page, where, i


# ---------------------------------------------------------------------------------- paragraphs


def _is_cue(s: str) -> bool:
    """A character cue: forced with @, or upper case (extensions aside) with at least one letter."""
    if s.startswith("@"):
        return len(s) > 1
    name = s.rstrip("^").split("(")[0].strip()
    if not name or not re.search(r"[A-Za-z]", name) or name != name.upper():
        return False
    # A heading-like or transition-like line stays what it looks like.
    return not HEADING_RE.match(s + " ") and not s.endswith("TO:") and not s.startswith(("!", ">", "~", "."))


def _paragraphs(lines: list[Optional[str]], first: int) -> list[list[tuple[int, str]]]:
    """Split the body into blocks separated by blank lines. Inside a dialogue block a line of two
    or more spaces keeps the block going (Fountain's way to write an empty line in dialogue)."""
    blocks: list[list[tuple[int, str]]] = []
    cur: list[tuple[int, str]] = []
    for i in range(first, len(lines)):
        ln = lines[i]
        if ln is None:
            continue
        if not ln.strip():
            in_dialogue = len(cur) >= 1 and _is_cue(cur[0][1].strip())
            if in_dialogue and len(ln) >= 2 and _next_is_text(lines, i):
                cur.append((i + 1, ""))
                continue
            if cur:
                blocks.append(cur)
            cur = []
            continue
        cur.append((i + 1, ln))
    if cur:
        blocks.append(cur)
    return blocks


def _next_is_text(lines: list[Optional[str]], i: int) -> bool:
    nxt = next((ln for ln in lines[i + 1:] if ln is not None), None)
    return nxt is not None and bool(nxt.strip())


def _col(raw: str) -> int:
    return len(raw) - len(raw.lstrip()) + 1


def _single_line(block: list[tuple[int, str]]) -> Optional[Element]:
    """Classify a one-line block that is a heading, a transition or centered text."""
    n, raw = block[0]
    s = raw.strip()
    if s.startswith("!"):
        return None
    if s.startswith(">") and not s.endswith("<"):
        return Element("transition", s[1:].strip(), n, _col(raw))
    if s.startswith(".") and len(s) > 1 and s[1] != ".":
        return _heading(s[1:], n, _col(raw), forced=True)
    if HEADING_RE.match(s):
        return _heading(s, n, _col(raw), forced=False)
    if s == s.upper() and re.search(r"[A-Z]", s) and (s.endswith("TO:") or s in TRANSITION_WORDS):
        return Element("transition", s, n, _col(raw))
    return None


def _centered(raw: str) -> bool:
    s = raw.strip()
    return len(s) >= 2 and s.startswith(">") and s.endswith("<")


def _heading(s: str, line: int, col: int, forced: bool) -> Element:
    extra = {"forced": forced}
    m = SCENE_NUMBER_RE.search(s)
    if m:
        extra["number"] = m.group(1)
        s = s[: m.start()]
    return Element("scene_heading", s.strip(), line, col, extra)


def _cue_elements(block: list[tuple[int, str]]) -> list[Element]:
    """A character cue and the parentheticals, dialogue and lyrics under it."""
    n, raw = block[0]
    s = raw.strip()
    forced = s.startswith("@")
    dual = s.endswith("^")
    body = s[1:] if forced else s
    body = body.rstrip("^").strip()
    name = body.split("(")[0].strip()
    extensions = [e.strip() for e in re.findall(r"\(([^)]*)\)", body)]
    out = [Element("character", name, n, _col(raw),
                   {"name": name, "extensions": extensions, "dual": dual, "forced": forced})]
    for n, raw in block[1:]:
        t = raw.strip()
        if t.startswith("(") and t.endswith(")"):
            out.append(Element("parenthetical", t, n, _col(raw)))
        elif t.startswith("~"):
            out.append(Element("lyrics", t[1:].strip(), n, _col(raw)))
        elif out[-1].kind == "dialogue":  # continuation line of the same speech
            out[-1].text += "\n" + t
        elif not t:  # an empty dialogue line ("  ") that follows no speech adds nothing
            continue
        else:
            out.append(Element("dialogue", t, n, _col(raw)))
    return out


def parse_fountain(text: str) -> FountainDocument:
    """Parse Fountain text into its title page and located elements (see the module docstring)."""
    lines, synopses = _clean_lines(text)
    page, where, first = _title_page(lines)
    elements: list[Element] = []
    for block in _paragraphs(lines, first):
        if len(block) == 1:
            single = _single_line(block)
            if single is not None:
                elements.append(single)
                continue
        head = block[0][1].strip()
        if all(_centered(ln) for _, ln in block):
            elements.extend(Element("centered", ln.strip()[1:-1].strip(), n, _col(ln)) for n, ln in block)
        elif len(block) >= 2 and _is_cue(head):
            elements.extend(_cue_elements(block))
        elif all(ln.strip().startswith("~") for _, ln in block):
            for n, raw in block:
                elements.append(Element("lyrics", raw.strip()[1:].strip(), n, _col(raw)))
        else:
            n, raw = block[0]
            body = "\n".join(ln.rstrip() for _, ln in block).strip("\n")
            if body.lstrip().startswith("!"):
                body = body.lstrip()[1:]
            elements.append(Element("action", body, n, _col(raw)))
    _attach_synopses(elements, synopses)
    return FountainDocument(page, where, elements)


def _attach_synopses(elements: list[Element], synopses: dict[int, str]) -> None:
    """A synopsis right under a scene heading describes that scene: keep it on the heading
    (as `extra["synopsis"]`); other synopses describe sections and are dropped."""
    for line, text in sorted(synopses.items()):
        before = [el for el in elements if el.line < line]
        if before and before[-1].kind == "scene_heading" and text:
            head = before[-1]
            head.extra["synopsis"] = f"{head.extra['synopsis']} {text}" if "synopsis" in head.extra else text


# ----------------------------------------------------------------------- elements to script data


def plain_text(s: str) -> str:
    """Screenplay text as spoken or captioned: emphasis markup removed, whitespace collapsed."""
    s = s.replace("\\*", "\0")  # an escaped \* is a literal star, not emphasis
    prev = None
    while prev != s:  # nested emphasis (***bold italic*** inside _underline_)
        prev, s = s, EMPHASIS_RE.sub(r"\2", s)
    return re.sub(r"\s+", " ", s.replace("\0", "*")).strip()


Loc = tuple[int, int]  # 1-based line, col


def cue_delivery(extensions: list[str]) -> str:
    """`voice-over` for a (V.O.) cue, `off-screen` for (O.S.)/(O.C.)/(OFF), else `on-screen`."""
    keys = {re.sub(r"[^A-Z]", "", e.upper()) for e in extensions}
    if keys & {"VO", "VOICEOVER"}:
        return "voice-over"
    if keys & {"OS", "OC", "OFF", "OFFSCREEN"}:
        return "off-screen"
    return "on-screen"


class _Folder:
    """Folds elements into scenes and beats, remembering where each came from."""

    def __init__(self, title: str, title_line: int):
        self.data: dict = {"title": title, "scenes": []}
        self.locs: dict[tuple, Loc] = {("title",): (title_line, 1)}
        self.problems: list[tuple[Loc, str, str]] = []
        self.cue: Optional[Element] = None  # the cue whose speech is being read
        self.cue_beats = 0  # beats made from that cue so far
        self.paren: Optional[str] = None  # a parenthetical waiting for its line

    def heading(self, el: Element) -> None:
        self.end_speech()
        scene = {"heading": plain_text(el.text), "beats": []}
        if el.extra.get("synopsis"):
            scene["description"] = plain_text(el.extra["synopsis"])
        self.data["scenes"].append(scene)
        si = len(self.data["scenes"]) - 1
        self.locs[("scenes", si)] = self.locs[("scenes", si, "heading")] = (el.line, el.col)

    def beat(self, beat: dict, el: Element, field_locs: dict[str, Loc]) -> None:
        if not self.data["scenes"]:
            self.problems.append(((el.line, el.col), f"{el.kind} before the first scene heading",
                                  "add a scene heading such as `INT. KITCHEN - DAY` above it"))
            return
        si = len(self.data["scenes"]) - 1
        beats = self.data["scenes"][si]["beats"]
        self.locs[("scenes", si, "beats", len(beats))] = (el.line, el.col)
        for key, loc in field_locs.items():
            self.locs[("scenes", si, "beats", len(beats), key)] = loc
        beats.append(beat)

    def speech(self, el: Element) -> None:
        cue = self.cue
        beat = {"character": cue.extra["name"], "line": plain_text(el.text)}
        if self.paren:
            beat["parenthetical"] = self.paren
        delivery = cue_delivery(cue.extra["extensions"])
        if delivery != "on-screen":
            beat["delivery"] = delivery
        if cue.extra["dual"] and self.cue_beats == 0:
            beat["overlap"] = True  # the second speaker of a dual-dialogue pair
        self.paren = None
        self.cue_beats += 1
        where = (cue.line, cue.col)
        self.beat(beat, cue, {"character": where, "overlap": where, "delivery": where,
                                 "line": (el.line, el.col)})

    def end_speech(self) -> None:
        """Close the current cue: a parenthetical after its last line describes how that line
        ends, so it joins that line; a cue with no line at all is an error."""
        if self.cue is not None and self.cue_beats == 0:
            self.problems.append(((self.cue.line, self.cue.col),
                                  f"character cue {self.cue.text!r} has no dialogue",
                                  "write the line under the cue, or make the cue an action line"))
        elif self.paren and self.data["scenes"] and self.data["scenes"][-1]["beats"]:
            last = self.data["scenes"][-1]["beats"][-1]
            before = last.get("parenthetical")
            last["parenthetical"] = f"{before}; {self.paren}" if before else self.paren
        self.cue, self.cue_beats, self.paren = None, 0, None


def fountain_script_data(doc: FountainDocument,
                         title_default: str) -> tuple[dict, dict[tuple, Loc], list[tuple[Loc, str, str]]]:
    """Fold elements into ScriptSpec-shaped data (without `cast`).

    Returns (data, locations, problems): locations map pydantic-style paths such as
    ("scenes", 0, "beats", 2, "character") to (line, col); problems are ((line, col), message, fix)
    for what a scene list cannot hold (text before the first scene heading, a cue with no line).
    Speech under a cue becomes dialogue beats (one per stretch between parentheticals); action,
    centered text and stray lyrics become action beats; transitions add nothing (shots cut).
    """
    title = plain_text(doc.title_page.get("title", "")) or title_default
    fold = _Folder(title, doc.title_lines.get("title", 1))
    for el in doc.elements:
        if el.kind == "scene_heading":
            fold.heading(el)
        elif el.kind == "character":
            fold.end_speech()
            fold.cue = el
        elif fold.cue is not None and el.kind == "parenthetical":
            fold.paren = plain_text(el.text[1:-1])
        elif fold.cue is not None and el.kind in ("dialogue", "lyrics"):
            fold.speech(el)
        elif el.kind in ("action", "centered", "lyrics"):
            fold.end_speech()
            fold.beat({"action": plain_text(el.text)}, el, {"action": (el.line, el.col)})
        else:  # transition
            fold.end_speech()
    fold.end_speech()
    return fold.data, fold.locs, fold.problems
