"""Malformed inputs: each one is reported as `file:line:col: message (fix: ...)`, all at once, and
`compose validate` exits 2 without a traceback.

Every case starts from a small valid project with real assets (scikit-image's astronaut, which has a
detectable face, and its cat with a face_box; synthetic voiced wavs) and breaks one thing.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from orchestrator.inputs.loading import load_project
from orchestrator.inputs.problems import SpecError

SCRIPT = """\
title: Tiny Test
cast: cast.yaml
scenes:
  - heading: INT. LAB - DAY
    description: A small lab.
    beats:
      - action: The lights hum.
      - character: HERO
        line: Is anyone here?
      - character: cat
        line: Only me.
        parenthetical: sleepy
        shot: close-up
render:
  speech: piper
  video: animatic
"""

CAST = """\
characters:
  - id: hero
    name: Hero
    trigger: HERO
    description: an astronaut in a white suit
    images: [assets/images/hero.png]
    voice:
      reference: assets/voices/hero.wav
      transcript: Hello there.
  - id: cat
    name: Cat
    trigger: CAT
    description: a tabby cat
    images: [assets/images/cat.png]
    face_box: [140, 40, 160, 140]
    voice:
      reference: assets/voices/cat.wav
      transcript: Meow.
"""


def voiced(seconds: float, sr: int = 16000, amp: float = 0.3) -> np.ndarray:
    """A buzzy, syllable-modulated harmonic tone: speech-like energy without a TTS."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return (amp * x * envelope / np.max(np.abs(x))).astype(np.float32)


@pytest.fixture(scope="session")
def asset_dir(tmp_path_factory) -> Path:
    from skimage import data

    root = tmp_path_factory.mktemp("assets")
    (root / "images").mkdir()
    (root / "voices").mkdir()
    Image.fromarray(data.astronaut()).save(root / "images" / "hero.png")
    Image.fromarray(data.chelsea()).save(root / "images" / "cat.png")
    sf.write(root / "voices" / "hero.wav", voiced(2.0), 16000)
    sf.write(root / "voices" / "cat.wav", voiced(1.5, amp=0.2), 16000)
    return root


def make_project(tmp_path: Path, asset_dir: Path) -> Path:
    """A valid project in tmp_path/project; returns its script.yaml."""
    project = tmp_path / "project"
    shutil.copytree(asset_dir, project / "assets")
    (project / "script.yaml").write_text(SCRIPT)
    (project / "cast.yaml").write_text(CAST)
    return project / "script.yaml"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def line_of(path: Path, needle: str, last: bool = False) -> int:
    text = path.read_text()
    at = text.rindex(needle) if last else text.index(needle)
    return text.count("\n", 0, at) + 1


@dataclass
class Case:
    file: str  # "script.yaml" or "cast.yaml": where the problem must be located
    needle: str  # text on the expected line (after the mutation)
    message: str  # fragment of the problem's message
    old: str = ""
    new: str = ""
    prepare: Optional[Callable[[Path], None]] = None  # extra mutation of the project folder
    fix: str = ""  # fragment of the fix
    last: bool = False  # needle's last occurrence


def _write_bytes(rel: str, payload: bytes) -> Callable[[Path], None]:
    return lambda project: (project / rel).write_bytes(payload)


def _write_wav(rel: str, x: np.ndarray) -> Callable[[Path], None]:
    return lambda project: sf.write(project / rel, x, 16000)


def _gradient(project: Path) -> None:
    ramp = np.tile(np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None], (200, 1, 3))
    Image.fromarray(ramp).save(project / "assets" / "images" / "hero.png")


def _outside_image(project: Path) -> None:
    Image.new("RGB", (8, 8)).save(project.parent / "outside.png")


def _escaping_link(project: Path) -> None:
    _outside_image(project)
    (project / "assets" / "images" / "link.png").symlink_to(project.parent / "outside.png")


CASES = {
    "unknown_top_key": Case("script.yaml", "titel:", "unknown key `titel`",
                            "title: Tiny Test\n", "title: Tiny Test\ntitel: Typo\n", fix="title, cast, scenes, render"),
    "unknown_beat_key": Case("script.yaml", "mood:", "dialogue beat: unknown key `mood`",
                             "        shot: close-up\n", "        shot: close-up\n        mood: sleepy\n"),
    "wrong_type": Case("script.yaml", "line: 42", "`line`: Input should be a valid string",
                       "line: Is anyone here?", "line: 42", fix="quote"),
    "missing_field": Case("cast.yaml", "- id: cat", "missing required key `name`", "    name: Cat\n", ""),
    "bad_framing": Case("script.yaml", "shot: extreme", "`shot`", "shot: close-up", "shot: extreme-close",
                        fix="wide, two-shot, medium, close-up, over-shoulder"),
    "unknown_speaker": Case("script.yaml", "character: DOG", "unknown speaker 'DOG'", "character: cat",
                            "character: DOG", fix="hero (HERO), cat (CAT)"),
    "missing_image": Case("cast.yaml", "nobody.png", "not found", "assets/images/hero.png",
                          "assets/images/nobody.png"),
    "corrupt_image": Case("cast.yaml", "hero.png", "cannot read image",
                          prepare=_write_bytes("assets/images/hero.png", b"\x89PNG\r\n\x1a\nnot really")),
    "missing_wav": Case("cast.yaml", "gone.wav", "not found", "assets/voices/hero.wav", "assets/voices/gone.wav"),
    "too_short_wav": Case("cast.yaml", "cat.wav", "shorter than 1 s",
                          prepare=_write_wav("assets/voices/cat.wav", voiced(0.4))),
    "too_long_wav": Case("cast.yaml", "cat.wav", "longer than 30 s",
                         prepare=_write_wav("assets/voices/cat.wav", voiced(31.0))),
    "silent_wav": Case("cast.yaml", "hero.wav", "silent",
                       prepare=_write_wav("assets/voices/hero.wav", np.zeros(32000, np.float32))),
    "undecodable_wav": Case("cast.yaml", "hero.wav", "cannot decode audio",
                            prepare=_write_bytes("assets/voices/hero.wav", b"RIFF0000WAVEjunk")),
    "escaping_path": Case("cast.yaml", "../outside.png", "outside the project folder",
                          "assets/images/hero.png", "../outside.png", prepare=_outside_image,
                          fix="--allow-outside-assets"),
    "escaping_symlink": Case("cast.yaml", "link.png", "is a symlink to", "assets/images/hero.png",
                             "assets/images/link.png", prepare=_escaping_link),
    "escaping_cast": Case("script.yaml", "cast: ../cast.yaml", "outside the project folder",
                          "cast: cast.yaml", "cast: ../cast.yaml"),
    "duplicate_ids": Case("cast.yaml", "id: hero", "id 'hero' is already the id of character 'hero' (line 2)",
                          "  - id: cat", "  - id: hero", last=True),
    "duplicate_triggers": Case("cast.yaml", "trigger: HERO", "trigger 'HERO' is already", "trigger: CAT",
                               "trigger: HERO", last=True),
    "bad_yaml_syntax": Case("script.yaml", "description:", "YAML syntax error",
                            "description: A small lab.", "description: A small: lab"),
    "duplicate_yaml_key": Case("script.yaml", "title: Again", "duplicate key",
                               "title: Tiny Test\n", "title: Tiny Test\ntitle: Again\n"),
    "empty_line": Case("script.yaml", 'line: "..."', "empty or only punctuation", "line: Only me.", 'line: "..."'),
    "blank_action": Case("script.yaml", "action:", "action text is blank", "action: The lights hum.",
                         'action: "   "'),
    "bad_face_box": Case("cast.yaml", "face_box", "width and height > 0", "[140, 40, 160, 140]", "[140, 40, 0, 140]"),
    "face_box_outside_image": Case("cast.yaml", "face_box", "lies outside image", "[140, 40, 160, 140]",
                                   "[400, 40, 160, 140]"),
    "no_face": Case("cast.yaml", "hero.png", "no face found", prepare=_gradient, fix="face_box"),
    "overlap_first_beat": Case("script.yaml", "overlap: true", "first beat of a scene",
                               "      - action: The lights hum.\n      - character: HERO\n",
                               "      - character: HERO\n        overlap: true\n"),
    "unknown_backend": Case("script.yaml", "speech: espeak", "unknown speech backend 'espeak'", "speech: piper",
                            "speech: espeak", fix="cosyvoice, piper"),
    "unknown_evaluator": Case("script.yaml", "vibes", "unknown evaluator 'vibes'", "  video: animatic\n",
                              "  video: animatic\n  evaluators: [lipsync, vibes]\n"),
    "beat_neither_form": Case("script.yaml", "- sound:", "neither an action nor a dialogue line",
                              "- action: The lights hum.", "- sound: The lights hum."),
    "scene_character_unknown": Case("script.yaml", "characters:", "scene character 'ghost' is not in the cast",
                                    "    description: A small lab.\n",
                                    "    description: A small lab.\n    characters: [hero, ghost]\n"),
    "bad_id": Case("cast.yaml", "id: Cat!", "`id`", "  - id: cat", "  - id: Cat!", fix="lower-case"),
    "voice_not_a_mapping": Case("cast.yaml", "voice: meow", "`voice`",
                                "    voice:\n      reference: assets/voices/cat.wav\n      transcript: Meow.\n",
                                "    voice: meow\n"),
    "no_beats": Case("script.yaml", "beats: []", "`beats`", "    beats:\n", "    beats: []\n    old_beats:\n"),
}


def _break(tmp_path: Path, asset_dir: Path, case: Case) -> tuple[Path, Path, int]:
    script = make_project(tmp_path, asset_dir)
    target = script.parent / case.file
    if case.old:
        edit(target, case.old, case.new)
    if case.prepare:
        case.prepare(script.parent)
    return script, target, line_of(target, case.needle, case.last)


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_input_is_located(tmp_path, asset_dir, name):
    case = CASES[name]
    script, target, line = _break(tmp_path, asset_dir, case)
    with pytest.raises(SpecError) as exc:
        load_project(script)
    texts = [str(p) for p in exc.value.problems]
    hits = [t for t in texts if t.startswith(f"{target}:{line}:") and case.message in t]
    assert hits, f"expected {target.name}:{line}: ...{case.message}... in:\n" + "\n".join(texts)
    assert all(" (fix: " in t for t in hits)
    assert case.fix in hits[0].split(" (fix: ", 1)[1]


def test_valid_project_loads(tmp_path, asset_dir):
    project = load_project(make_project(tmp_path, asset_dir))
    assert [b.character for b in project.script.scenes[0].beats[1:]] == ["hero", "cat"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_cli_validate_exits_2_with_locations(tmp_path, asset_dir, capsys, monkeypatch, name):
    from orchestrator.cli import main

    monkeypatch.setenv("COLUMNS", "400")  # rich wraps long lines at the terminal width
    script, target, line = _break(tmp_path, asset_dir, CASES[name])
    assert main(["validate", str(script)]) == 2
    err = capsys.readouterr().err
    assert f"{target}:{line}:" in err
    assert "Traceback" not in err


def test_all_problems_are_reported_together(tmp_path, asset_dir):
    script = make_project(tmp_path, asset_dir)
    cast = script.parent / "cast.yaml"
    edit(script, "title: Tiny Test\n", "title: Tiny Test\ntitel: Typo\n")
    edit(script, "character: cat", "character: DOG")
    edit(script, "line: Only me.", 'line: "!!"')
    edit(script, "speech: piper", "speech: espeak")
    edit(cast, "assets/voices/hero.wav", "assets/voices/gone.wav")
    edit(cast, "[140, 40, 160, 140]", "[140, 40, 0, 140]")
    sf.write(script.parent / "assets" / "voices" / "cat.wav", voiced(0.3), 16000)
    with pytest.raises(SpecError) as exc:
        load_project(script)
    got = [(Path(p.file).name, p.line) for p in exc.value.problems]
    assert got == [("script.yaml", 2), ("script.yaml", 11), ("script.yaml", 12), ("script.yaml", 16),
                   ("cast.yaml", 8), ("cast.yaml", 15), ("cast.yaml", 17)]
    # The exception's text is every problem, one per line, in that order.
    assert str(exc.value).splitlines() == [str(p) for p in exc.value.problems]
