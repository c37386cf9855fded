"""Path attacks: asset paths must stay inside the project folder (the script's folder), as written
and after following symlinks, unless the user allows otherwise."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from orchestrator.inputs.loading import load_project
from orchestrator.inputs.problems import SpecError
from tests.faults.test_malformed_inputs import asset_dir, edit, make_project  # noqa: F401 (fixture)

HERO = "assets/images/hero.png"


@pytest.fixture
def project(tmp_path, asset_dir):  # noqa: F811
    script = make_project(tmp_path, asset_dir)
    Image.new("RGB", (8, 8)).save(tmp_path / "outside.png")
    return script


def problems_of(script: Path, **kw) -> list[str]:
    with pytest.raises(SpecError) as exc:
        load_project(script, **kw)
    return [str(p) for p in exc.value.problems]


@pytest.mark.parametrize("written", ["../outside.png", "assets/../../outside.png", "{tmp}/outside.png"])
def test_paths_leaving_the_project_are_rejected(project, written):
    written = written.format(tmp=project.parent.parent)
    edit(project.parent / "cast.yaml", HERO, written)
    (problem,) = problems_of(project)
    assert problem.startswith(f"{project.parent / 'cast.yaml'}:6:14: {written} is outside the project folder")
    # The check does not depend on opening the assets.
    assert problems_of(project, check_assets=False) == [problem]


def test_allow_outside_assets_accepts_them_with_absolute_paths(project):
    edit(project.parent / "cast.yaml", HERO, "../outside.png")
    loaded = load_project(project, allow_outside_assets=True, check_assets=False)
    assert loaded.cast.by_id("hero").images == [project.parent.parent / "outside.png"]


def test_a_path_that_leaves_and_comes_back_is_inside(project):
    edit(project.parent / "cast.yaml", HERO, f"../project/{HERO}")
    loaded = load_project(project)
    assert loaded.cast.by_id("hero").images == [project.parent / HERO]


def test_symlinked_file_escaping_is_rejected(project):
    (project.parent / "assets" / "images" / "link.png").symlink_to(project.parent.parent / "outside.png")
    edit(project.parent / "cast.yaml", HERO, "assets/images/link.png")
    (problem,) = problems_of(project, check_assets=False)
    assert ":6:14: assets/images/link.png is a symlink to" in problem and "outside the project folder" in problem


def test_symlinked_folder_escaping_is_rejected(project):
    outside = project.parent.parent / "elsewhere"
    outside.mkdir()
    shutil.copy(project.parent / HERO, outside / "hero.png")
    (project.parent / "assets" / "linked").symlink_to(outside, target_is_directory=True)
    edit(project.parent / "cast.yaml", HERO, "assets/linked/hero.png")
    (problem,) = problems_of(project)
    assert "assets/linked/hero.png is a symlink to" in problem


def test_symlink_staying_inside_is_fine(project):
    (project.parent / "assets" / "images" / "alias.png").symlink_to(project.parent / HERO)
    edit(project.parent / "cast.yaml", HERO, "assets/images/alias.png")
    loaded = load_project(project)
    assert loaded.cast.by_id("hero").images == [project.parent / HERO]  # resolved


def test_project_reached_through_a_symlinked_folder(project, tmp_path):
    (tmp_path / "via").symlink_to(project.parent, target_is_directory=True)
    loaded = load_project(tmp_path / "via" / "script.yaml")
    assert loaded.root == project.parent.resolve()
    assert loaded.cast_path == project.parent / "cast.yaml"


def test_cast_voice_lora_and_background_are_confined(project):
    cast = project.parent / "cast.yaml"
    edit(cast, "assets/voices/hero.wav", "../hero.wav")
    edit(cast, "    face_box:", "    lora: /etc/passwd\n    face_box:")
    edit(project, "    description: A small lab.\n", "    description: A small lab.\n    background: ../outside.png\n")
    found = problems_of(project)
    assert [p.split(": ", 1)[0].rsplit("/", 1)[1] for p in found] == [
        "script.yaml:6:17", "cast.yaml:8:18", "cast.yaml:15:11"]
    assert all("outside the project folder" in p for p in found)


def test_cast_file_itself_is_confined(project, tmp_path):
    shutil.move(project.parent / "cast.yaml", tmp_path / "cast.yaml")
    (project.parent / "cast.yaml").symlink_to(tmp_path / "cast.yaml")
    (problem,) = problems_of(project)
    assert problem.startswith(f"{project}:2:7: cast.yaml is a symlink to")


def test_fountain_title_page_cast_is_confined(project):
    script = project.parent / "s.fountain"
    script.write_text("Title: T\nCast: ../cast.yaml\n\nINT. LAB - DAY\n\nHERO\nHi.\n")
    (problem,) = problems_of(script)
    assert problem.startswith(f"{script}:2:1: ../cast.yaml is outside the project folder")


def test_explicit_cast_flag_is_the_users_choice_but_its_assets_are_confined(project, tmp_path):
    shutil.copy(project.parent / "cast.yaml", tmp_path / "cast.yaml")
    script = project.parent / "s.fountain"
    script.write_text("INT. LAB - DAY\n\nHERO\nHi.\n")
    found = problems_of(script, cast_path=tmp_path / "cast.yaml", check_assets=False)
    # The cast's images and voices resolve next to it, outside the project folder.
    assert len(found) == 4 and all("outside the project folder" in p for p in found)
    assert all(p.startswith(f"{tmp_path / 'cast.yaml'}:") for p in found)


def test_dotdot_after_a_symlinked_folder_follows_the_link(project, tmp_path):
    # assets/out -> ../../elsewhere/deep: "assets/out/../x.png" is elsewhere/x.png on disk, although
    # it reads as assets/x.png.
    deep = tmp_path / "elsewhere" / "deep"
    deep.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "elsewhere" / "x.png")
    (project.parent / "assets" / "out").symlink_to(deep, target_is_directory=True)
    edit(project.parent / "cast.yaml", HERO, "assets/out/../x.png")
    (problem,) = problems_of(project, check_assets=False)
    assert f"is a symlink to {tmp_path.resolve() / 'elsewhere' / 'x.png'}" in problem


def test_symlink_loop_is_a_problem_not_a_crash(project):
    images = project.parent / "assets" / "images"
    (images / "a.png").symlink_to(images / "b.png")
    (images / "b.png").symlink_to(images / "a.png")
    edit(project.parent / "cast.yaml", HERO, "assets/images/a.png")
    (problem,) = problems_of(project)
    assert ":6:14: assets/images/a.png" in problem
