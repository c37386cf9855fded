"""Malformed inputs: each one is reported as `file:line:col: message (fix: ...)`, all at once, and
`compose validate` exits 2 without a traceback.

Every case starts from a small valid project with real assets (scikit-image's astronaut, which has a
detectable face, and its cat with a face_box; synthetic voiced wavs) and breaks one thing.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from orchestrator.inputs.loading import load_project
from orchestrator.inputs.problems import SpecError
from tests.fixtures.malformed import (
    CASES,
    break_project,
    build_assets,
    edit,
    make_project,
    voiced,
)


@pytest.fixture(scope="session")
def asset_dir(tmp_path_factory) -> Path:
    return build_assets(tmp_path_factory.mktemp("assets"))



@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_input_is_located(tmp_path, asset_dir, name):
    case = CASES[name]
    script, target, line = break_project(tmp_path, asset_dir, case)
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
    script, target, line = break_project(tmp_path, asset_dir, CASES[name])
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
