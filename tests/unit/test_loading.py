"""Loading a project: YAML positions, pydantic errors mapped to them, the loaded Project itself."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.inputs.loading import load_project, read_yaml, validate_schema
from orchestrator.inputs.problems import SpecError
from orchestrator.inputs.project import ScriptSpec
from orchestrator.schema.script import ActionBeat, DialogueBeat
from tools import registry

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "orbit"

CAST = """\
characters:
  - id: ada
    name: Ada
    trigger: ADA
    images: [img/ada.png]
    voice: {reference: voice/ada.wav, transcript: Hello.}
  - id: bob
    name: Bob
    trigger: BOB
    images: [img/bob.png]
    voice: {reference: voice/bob.wav, transcript: Hi.}
"""


def write_project(tmp_path: Path, beats: str, render: str = "", scene_extra: str = "") -> Path:
    (tmp_path / "cast.yaml").write_text(CAST)
    script = tmp_path / "script.yaml"
    script.write_text(f"title: T\ncast: cast.yaml\nscenes:\n  - heading: INT. ROOM - DAY\n{scene_extra}"
                      f"    beats:\n{beats}{render}")
    return script


def messages(script: Path, **kw) -> list[str]:
    with pytest.raises(SpecError) as exc:
        load_project(script, check_assets=False, **kw)
    return [str(p) for p in exc.value.problems]


def test_example_project_loads_with_absolute_paths_and_cast_ids():
    project = load_project(EXAMPLE / "script.yaml")
    assert project.root == EXAMPLE.resolve()
    assert project.cast_path == (EXAMPLE / "cast.yaml").resolve() == project.script.cast
    for c in project.cast.characters:
        assert all(p.is_absolute() and p.is_file() for p in c.images)
        assert c.voice.reference.is_absolute() and c.voice.reference.is_file()
    speakers = {b.character for s in project.script.scenes for b in s.beats if isinstance(b, DialogueBeat)}
    assert speakers == {"collins", "hopper", "chelsea"}  # cues in the YAML are triggers: now ids
    lines = (EXAMPLE / "script.yaml").read_text().splitlines()
    file, line, col = project.locations["beat:1:2"]
    assert file.endswith("script.yaml") and lines[line - 1][col - 1:].startswith("character: COLLINS")
    file, line, col = project.locations["scene:2"]
    assert lines[line - 1][col - 1:].startswith("heading: EXT. LAUNCH PAD")
    assert len([k for k in project.locations if k.startswith("beat:")]) == sum(
        len(s.beats) for s in project.script.scenes)


def test_positions_of_keys_values_and_flow_items(tmp_path):
    f = tmp_path / "a.yaml"
    f.write_text("a: 1\nlist:\n  - x: [10, 20,\n      30]\n    y: hi\n")
    src = read_yaml(f, [])
    assert src.data == {"a": 1, "list": [{"x": [10, 20, 30], "y": "hi"}]}
    assert src.at(("a",), value=False) == (1, 1) and src.at(("a",)) == (1, 4)
    assert src.at(("list", 0)) == (3, 5)
    assert src.at(("list", 0, "x", 2)) == (4, 7)
    assert src.at(("list", 0, "y")) == (5, 8)
    assert src.at(("list", 0, "nope", 3)) == (3, 5)  # nearest enclosing node


def test_yaml_syntax_error_is_located(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("title: ok\nscenes:\n  - heading: [unclosed\n  - other\n")
    problems = []
    assert read_yaml(f, problems) is None
    (p,) = problems
    # ruamel notices at the end of the file; the message points back at the unclosed bracket.
    assert p.file == str(f) and p.line == 5 and "YAML syntax error" in p.message
    assert "flow sequence that starts at line 3" in p.message


def test_beat_errors_name_the_form_the_keys_chose(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("title: T\ncast: c.yaml\nscenes:\n  - heading: H\n    beats:\n"
                 "      - action: 3\n      - character: ADA\n        shot: far\n")
    src = read_yaml(f, [])
    problems = []
    assert not validate_schema(ScriptSpec, src, problems)
    got = [(p.line, p.message) for p in problems]
    assert got == [
        (6, "action beat: `action`: Input should be a valid string (got 3)"),
        (7, "dialogue beat: missing required key `line`"),
        (8, "dialogue beat: `shot`: Input should be 'wide', 'two-shot', 'medium', 'close-up' or "
            "'over-shoulder' (got 'far')"),
    ]


def test_check_assets_false_skips_files_but_makes_paths_absolute(tmp_path):
    script = write_project(tmp_path, "      - character: ada\n        line: Hi.\n",
                           "render:\n  avdit: {model_dir: weights/wan}\n")
    project = load_project(script, check_assets=False)
    assert project.cast.by_id("ada").images == [tmp_path.resolve() / "img" / "ada.png"]
    assert project.cast.by_id("bob").voice.reference == tmp_path.resolve() / "voice" / "bob.wav"
    assert project.script.render.avdit.model_dir == tmp_path / "weights" / "wan"


def test_cast_flag_overrides_the_scripts_cast(tmp_path):
    script = write_project(tmp_path, "      - character: ADA\n        line: Hi.\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "other.yaml").write_text(CAST)
    project = load_project(script, cast_path=tmp_path / "sub" / "other.yaml", check_assets=False)
    assert project.cast_path == (tmp_path / "sub" / "other.yaml").resolve()
    # Assets resolve next to the cast file that names them.
    assert project.cast.by_id("ada").images == [tmp_path.resolve() / "sub" / "img" / "ada.png"]


def test_overlap_needs_an_earlier_line_by_someone_else(tmp_path):
    beats = ("      - action: Quiet.\n"
             "      - character: ada\n        line: One.\n        overlap: true\n"
             "      - character: ADA\n        line: Two.\n        overlap: true\n"
             "      - character: bob\n        line: Three.\n        overlap: true\n")
    found = messages(write_project(tmp_path, beats))
    assert [m.split(": ", 1)[0].rsplit(":", 2)[1:] for m in found] == [["9", "9"], ["12", "9"]]
    assert "no dialogue line before it" in found[0]
    assert "cannot overlap their own previous line" in found[1]


def test_speakers_must_be_in_the_scenes_characters(tmp_path):
    found = messages(write_project(tmp_path, "      - character: bob\n        line: Hi.\n",
                                   scene_extra="    characters: [ADA]\n"))
    assert len(found) == 1 and ":7:20: 'bob' speaks but is not in the scene's `characters`" in found[0]


def test_names_and_triggers_must_not_collide(tmp_path):
    script = write_project(tmp_path, "      - action: Quiet.\n")
    (tmp_path / "cast.yaml").write_text(CAST.replace("trigger: BOB", "trigger: ada"))
    (found,) = messages(script)
    assert ":9:14: trigger 'ada' is already the id of character 'ada' (line 2)" in found


def test_registered_backends_are_accepted(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.SPEECH, "fake", lambda: None)
    script = write_project(tmp_path, "      - action: Quiet.\n", "render: {speech: fake, planner: llm}\n")
    assert load_project(script, check_assets=False).script.render.speech == "fake"
    script.write_text(script.read_text().replace("planner: llm", "planner: oracle"))
    (found,) = messages(script)
    assert ":7:33: unknown planner 'oracle'" in found and "llm, rules" in found


def test_missing_files_and_wrong_shapes(tmp_path):
    (found,) = messages(tmp_path / "nope.yaml")
    assert found.startswith(f"{tmp_path / 'nope.yaml'}:1:1: file") and "not found" in found
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (found,) = messages(tmp_path / "list.yaml")
    assert "must be a mapping with `title`, `cast` and `scenes`" in found
    script = write_project(tmp_path, "      - action: Quiet.\n")
    (tmp_path / "cast.yaml").unlink()
    (found,) = messages(script)
    assert found.startswith(f"{script}:2:7: file {tmp_path / 'cast.yaml'} not found")


def test_returns_plain_beats(tmp_path):
    script = write_project(tmp_path, "      - action: Quiet.\n      - character: Bob\n        line: Hi.\n"
                                     "        parenthetical: softly\n        shot: close-up\n")
    beats = load_project(script, check_assets=False).script.scenes[0].beats
    assert beats == [ActionBeat(action="Quiet."),
                     DialogueBeat(character="bob", line="Hi.", parenthetical="softly", shot="close-up")]
