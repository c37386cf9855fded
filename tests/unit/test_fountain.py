"""Fountain parsing: every element type, checked against the reference parser's fixtures
(tests/data/fountain, MIT), then folding into scenes and beats."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.inputs.fountain import (
    fountain_script_data,
    parse_fountain,
    plain_text,
)
from orchestrator.inputs.loading import load_project
from orchestrator.inputs.problems import SpecError

DATA = Path(__file__).resolve().parents[1] / "data" / "fountain"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "orbit"


def kinds(name: str) -> list[tuple[str, str]]:
    doc = parse_fountain((DATA / name).read_text())
    return [(e.kind, e.text) for e in doc.elements]


# Per fixture: the elements we expect, in order. Where the fountain.io spec and the reference
# parser's tests (FountainTests/*Tests.m) disagree, the comment says which one we follow.
EXPECTED = {
    "Boneyard.fountain": [("action", "A line of action."), ("action", "This is an boneyard.")],
    "Notes.fountain": [("action", "A line."), ("action", "This is an note.")],
    "PageBreaks.fountain": [("action", "Page one."), ("action", "Page two."), ("action", "Page three.")],
    "SectionHeaders.fountain": [],  # sections only: nothing to film
    "Synopses.fountain": [],  # section synopses are dropped
    "Sections-Complex.fountain": [("scene_heading", "INT. LOCATION - DAY")] * 2,
    "MultilineAction.fountain": [
        ("action", "A normal line of action."),
        ("action", "This is a multi-line block of Action.\nMade famous by the great\nWALTER HILL\n"
                   "but used by many other writers."),
        ("action", "A normal line of action."),
    ],
    "CenteredText.fountain": [("centered", "Centered"), ("transition", "Not centered"),
                              ("centered", "No space"), ("centered", "Lots of Space")],
    "DualDialogue.fountain": [("character", "ADAM"), ("dialogue", "Yes."),
                              ("character", "EVE"), ("dialogue", "No.")],
    "ForcedElements.fountain": [("action", "BANG\nBANG\nBANG"), ("character", "McDUCK"),
                                ("dialogue", "I'm vegan."), ("character", "SINGER"),
                                ("lyrics", "These are the songs"), ("lyrics", "That I sing.")],
    # The reference's test asserts "CUT TO:  " (trailing spaces) is a transition: we agree.
    "Transitions.fountain": [("transition", t) for t in
                             ("CUT TO:", "SMASH CUT TO:", "FADE TO BLACK.", "NOT A STANDARD TRANSITION:",
                              "CUT TO:", "GO TO:", "TO:")],
    "SceneNumbers.fountain": [("scene_heading", "INT. HOUSE - DAY")] * 6
    + [("scene_heading", "INT. HOUSE - DAY - FLASHBACK (1944)")],
    "Indenting.fountain": [
        ("transition", "CUT TO:"), ("scene_heading", "INT. GARAGE - DAY"),
        ("action", "BRICK and STEEL get into Mom's PORSCHE, Steel at the wheel.  They pause for a beat, "
                   "the gravity of the situation catching up with them."),
        ("character", "BRICK"), ("dialogue", "This is everybody we've ever put away."),
        ("character", "STEEL"), ("parenthetical", "(starting the engine)"),
        ("dialogue", "So much for retirement!"), ("action", "They speed off.  To destiny!"),
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_elements(name):
    assert kinds(name) == EXPECTED[name]


def test_scene_headers_fixture():
    headings = {text for kind, text in kinds("SceneHeaders.fountain") if kind == "scene_heading"}
    for h in ("INT. HOUSE - DAY", "EXT. HOUSE - DAY", "INT HOUSE DAY", "EXT HOUSE DAY", "INT/EXT. HOUSE - DAY",
              "INT./EXT. HOUSE - DAY", "I/E. HOUSE - DAY", "I./E. HOUSE - DAY", "I/E HOUSE DAY",
              "INT - HOUSE - DAY", "EXT - HOUSE - DAY", "EST. HOUSE - DAY", "EST HOUSE DAY",
              "INT. HOUSE - DAY (1979)", "KITCHEN", "int. house - day"):
        assert h in headings
    doc = parse_fountain((DATA / "SceneHeaders.fountain").read_text())
    forced = [e for e in doc.elements if e.extra.get("forced")]
    assert [(e.text, e.line) for e in forced] == [("KITCHEN", 29)]
    # Not headings: "..." is not a forced heading, two headings without a blank line between them
    # are action, and ESTABLISHING has no separator after its prefix.
    actions = [t for k, t in kinds("SceneHeaders.fountain") if k == "action"]
    assert actions == ["... not a scene header.", "INT. HOUSE - DAY\nEXT. HOUSE - DAY", "ESTABLISHING"]


def test_scene_numbers_are_kept_apart():
    doc = parse_fountain((DATA / "SceneNumbers.fountain").read_text())
    assert [e.extra["number"] for e in doc.elements] == ["1", "1A", "1a", "A1", "I-1-A", "1.", "110A"]


def test_dialogue_fixture():
    doc = parse_fountain((DATA / "Dialogue.fountain").read_text())
    els = doc.elements
    cues = [(e.text, e.extra["extensions"], e.extra["dual"], e.line) for e in els if e.kind == "character"]
    assert cues[:5] == [("ADAM", [], False, 1), ("EVE", ["O.S."], False, 4), ("ADAM", [], False, 7),
                        ("EVE", [], False, 11), ("EVE", ["cont'd"], False, 14)]
    assert ("EVE", [], True, 29) in cues  # dual dialogue: caret removed from the name
    assert ("R2D2", [], False, 32) in cues  # digits are fine with at least one letter
    assert ("EVE", [], False, 48) in cues  # indented cue
    assert not any(c[0].startswith("23") for c in cues)  # a cue needs a letter: that one is action
    parens = [(e.text, e.line) for e in els if e.kind == "parenthetical"]
    assert parens == [("(nervous)", 8), ("(kissing him)", 24), ("(*This is a valid character cue.*)", 34),
                      ("(feeling cocky)", 49)]
    speech = {e.line: e.text for e in els if e.kind == "dialogue"}
    assert speech[12] == "ME TOO!"  # all-caps dialogue is still dialogue
    assert speech[18] == "That's great.\nI was really worried you wouldn't\nlike screenwriting."
    # A line of two spaces keeps a dialogue block going.
    assert speech[40].endswith("block\n\nfor absolutely no good\nreason.")
    assert speech[50] == "Well, then I'll just indent!"


def test_simple_fixture_title_page_and_ignored_markup():
    doc = parse_fountain((DATA / "Simple.fountain").read_text())
    assert doc.title_page == {"title": "A Simple Script", "author": "Nima Yousefi", "draft date": "2/1/2012"}
    got = [(e.kind, e.text, e.line) for e in doc.elements]
    assert got == [
        ("transition", "FADE IN:", 6), ("scene_heading", "INT. OFFICE - MORNING", 8),
        ("action", "A MAN sits alone at his desk.", 10), ("character", "MAN", 12),
        ("parenthetical", "(passionately)", 13), ("dialogue", "I'm writing.", 14),
        ("scene_heading", "ext. house - day", 18), ("action", "Another scene.", 20),
        ("transition", "Burn to White.", 22), ("centered", "THE END", 24),
        ("action", "This is in section one.", 36),
        ("action", "This should be at a higher depth than the previous section.", 40),
        ("scene_heading", "FORCED SCENE HEADING", 42), ("action", "... Not a forced scene heading", 44),
        ("action", "Scott exasperatedly throws down the card on the table and picks up the phone, "
                   "hitting speed dial #1...", 48),
        ("transition", "CUT TO:", 52),
    ]


def test_notes_and_boneyard_inside_dialogue_do_not_split_it():
    text = "INT. ROOM - DAY\n\nADAM\nHello [[a note]] there.\n[[a whole-line note]]\n/* cut */\nStill me.\n"
    doc = parse_fountain(text)
    assert [(e.kind, e.text, e.line) for e in doc.elements] == [
        ("scene_heading", "INT. ROOM - DAY", 1), ("character", "ADAM", 3),
        ("dialogue", "Hello there.\nStill me.", 4)]


def test_emphasis_is_stripped_for_speech():
    assert plain_text("I *really* **mean** it, _Adam_.") == "I really mean it, Adam."
    assert plain_text("***All*** of\nit  \\*now\\*") == "All of it *now*"


def test_folding_into_beats():
    text = """Title: _Two Rooms_

INT. ROOM - DAY
= A bare room.

ADAM enters.

ADAM (V.O.)
(quietly)
First line.
(louder)
Second line.
(beat)

EVE ^
Same time.

@McCOY
Forced.

CUT TO:

> THE END <
"""
    data, locs, problems = fountain_script_data(parse_fountain(text), "fallback")
    assert problems == []
    assert data["title"] == "Two Rooms"
    scene = data["scenes"][0]
    assert scene["description"] == "A bare room."
    assert scene["beats"] == [
        {"action": "ADAM enters."},
        {"character": "ADAM", "line": "First line.", "parenthetical": "quietly", "delivery": "voice-over"},
        # A parenthetical after the last line stays with that line.
        {"character": "ADAM", "line": "Second line.", "parenthetical": "louder; beat", "delivery": "voice-over"},
        {"character": "EVE", "line": "Same time.", "overlap": True},
        {"character": "McCOY", "line": "Forced."},
        {"action": "THE END"},
    ]
    assert locs[("scenes", 0)] == (3, 1)
    assert locs[("scenes", 0, "beats", 2, "character")] == (8, 1)  # the cue
    assert locs[("scenes", 0, "beats", 2, "line")] == (12, 1)
    assert locs[("scenes", 0, "beats", 3, "overlap")] == (15, 1)


def test_folding_problems_are_located():
    text = "Stray action.\n\nINT. ROOM - DAY\n\nADAM\n(silent)\n"
    data, _, problems = fountain_script_data(parse_fountain(text), "t")
    assert data["title"] == "t"
    assert [(loc, msg.split(" ")[0]) for loc, msg, _ in problems] == [((1, 1), "action"), ((5, 1), "character")]
    assert "before the first scene heading" in problems[0][1]
    assert "no dialogue" in problems[1][1]


def test_fountain_and_yaml_example_have_the_same_dialogue():
    yaml_project = load_project(EXAMPLE / "script.yaml", check_assets=False)
    fountain_project = load_project(EXAMPLE / "script.fountain", check_assets=False)

    def dialogue(project):
        return [[(b.character, b.line, b.parenthetical, b.overlap) for b in s.beats if hasattr(b, "line")]
                for s in project.script.scenes]

    assert dialogue(fountain_project) == dialogue(yaml_project)
    assert [s.heading for s in fountain_project.script.scenes] == [s.heading for s in yaml_project.script.scenes]
    assert fountain_project.script.title == yaml_project.script.title
    assert fountain_project.cast_path == yaml_project.cast_path  # from the title page's Cast: key


def test_fountain_unknown_speaker_is_reported_at_the_cue(tmp_path):
    cast = (EXAMPLE / "cast.yaml").read_text()
    (tmp_path / "cast.yaml").write_text(cast)
    script = tmp_path / "s.fountain"
    script.write_text("INT. DECK - DAY\n\nCOLLINS\nHello.\n\nZORG (O.S.)\nGreetings.\n")
    with pytest.raises(SpecError) as exc:
        load_project(script, cast_path=tmp_path / "cast.yaml", check_assets=False)
    (problem,) = exc.value.problems
    assert str(problem).startswith(f"{script}:6:1: unknown speaker 'ZORG'")
    assert "collins (COLLINS), hopper (HOPPER), chelsea (CHELSEA)" in problem.fix


def test_fountain_cues_match_by_name_or_trigger_case_insensitively(tmp_path):
    (tmp_path / "cast.yaml").write_text((EXAMPLE / "cast.yaml").read_text())
    script = tmp_path / "s.fountain"
    script.write_text("EXT. PAD - DAWN\n\n@collins\nOne.\n\n@Hopper (CONT'D)\nTwo.\n\nCHELSEA\nThree.\n")
    project = load_project(script, cast_path=tmp_path / "cast.yaml", check_assets=False)
    assert [b.character for b in project.script.scenes[0].beats] == ["collins", "hopper", "chelsea"]
    assert project.script.title == "s"  # no title page: the file name
    assert project.script.render.speech == "piper"  # render settings are the defaults


def test_fountain_without_a_cast_is_an_error(tmp_path):
    script = tmp_path / "s.fountain"
    script.write_text("INT. DECK - DAY\n\nA beat.\n")
    with pytest.raises(SpecError) as exc:
        load_project(script, check_assets=False)
    assert "needs a cast file" in str(exc.value) and "--cast" in str(exc.value)


def test_title_page_with_indented_values_and_any_key():
    text = ("Format: screenplay\nTitle:\n    _**BRICK & STEEL**_\n    _**FULL RETIRED**_\n\n"
            "INT. ROOM - DAY\n\nAction.\n")
    doc = parse_fountain(text)
    assert doc.title_page["format"] == "screenplay" and doc.title_lines["title"] == 2
    data, locs, problems = fountain_script_data(doc, "x")
    assert data["title"] == "BRICK & STEEL FULL RETIRED" and locs[("title",)] == (2, 1) and problems == []
