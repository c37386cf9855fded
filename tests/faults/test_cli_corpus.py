"""The malformed-input corpus through the real `compose` command, in a folder that already holds a
finished film: every case exits 2 with `file:line:col:` where a file is at fault and a fix, prints
no traceback, and leaves the earlier run's outputs exactly as they were.

The corpus is the in-process catalogue (tests/fixtures/malformed.py) plus what only the full
command meets: hostile YAML (alias bombs, deep nesting, Python tags, 50 MB), binary files,
unusable paths, decompression-bomb images, out-of-range settings and bad command-line flags.
"""
from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from orchestrator.store import digest_file
from tests.fixtures.malformed import (
    CASES,
    Case,
    break_project,
    build_assets,
    make_project,
)
from tests.fixtures.pipeline_kit import write_project

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = [sys.executable, "-m", "orchestrator.cli"]


def _alias_bomb(project: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    text = (project / "script.yaml").read_text()
    (project / "script.yaml").write_text(text.replace("scenes:\n", "\n".join(lines) + "\nbomb: *a9\nscenes:\n", 1))


def _deep(project: Path) -> None:
    text = (project / "script.yaml").read_text()
    (project / "script.yaml").write_text(text.replace("scenes:\n", "deep: " + "[" * 20000 + "]" * 20000 + "\nscenes:\n"))


def _huge(project: Path) -> None:
    with open(project / "script.yaml", "a") as f:
        f.write(("# " + "x" * 1022 + "\n") * (50 * 1024))  # 50 MiB of comments


def _nul(project: Path) -> None:
    (project / "script.yaml").write_bytes((project / "script.yaml").read_bytes().replace(b"A small lab.", b"A small\0lab."))


def _latin1(project: Path) -> None:
    (project / "script.yaml").write_bytes((project / "script.yaml").read_bytes().replace(b"A small lab.", "Caf\xe9.".encode("latin-1")))


def _png_bomb(project: Path) -> None:
    """A valid PNG header saying 15000 x 15000 (225 megapixels) over a few kB of compressed zeros."""
    w = h = 15000

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    raw = zlib.compress(b"\0" * ((w // 8 + 1) * h), 9)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0]))
    (project / "assets" / "images" / "hero.png").write_bytes(png + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def _replace(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new, 1))


def _many_scenes(project: Path) -> None:
    extra = "".join(f"  - heading: INT. ROOM {i:03d} - DAY\n    beats:\n      - action: Nothing.\n" for i in range(1, 101))
    _replace(project / "script.yaml", "render:\n", extra + "render:\n")


def _many_beats(project: Path) -> None:
    extra = "".join(f"      - action: Beat {j:03d}\n" for j in range(100))
    _replace(project / "script.yaml", "        shot: close-up\n", "        shot: close-up\n" + extra)


def _render(key: str) -> tuple[str, str]:
    """(old, new) that sets render.<key> in the fixture script."""
    return "  video: animatic\n", f"  video: animatic\n  {key}\n"


EXTRA = {
    "fps_zero": Case("script.yaml", "fps: 0", "`fps`", *_render("fps: 0"), fix="from 8 to 60"),
    "sample_rate_7": Case("script.yaml", "sample_rate: 7", "`sample_rate`", *_render("sample_rate: 7"), fix="24000"),
    "odd_width": Case("script.yaml", "width: 853", "must be even", *_render("width: 853")),
    "height_63": Case("script.yaml", "height: 63", "`height`", *_render("height: 63"), fix="from 64 to 1080"),
    "attempts_zero": Case("script.yaml", "max_attempts: 0", "`max_attempts`", *_render("max_attempts: 0"),
                          fix="from 1 to 10"),
    "crossfade_long": Case("script.yaml", "crossfade: 5", "`crossfade`", *_render("crossfade: 5"), fix="from 0.0 to 1.0"),
    "loudness_zero": Case("script.yaml", "loudness_lufs: 0", "`loudness_lufs`", *_render("loudness_lufs: 0"),
                          fix="from -40.0 to -5.0"),
    "seed_negative": Case("script.yaml", "seed: -1", "`seed`", *_render("seed: -1")),
    "llm_timeout_zero": Case("script.yaml", "timeout_s: 0", "`timeout_s`", *_render("llm: {timeout_s: 0}")),
    "avdit_steps_zero": Case("script.yaml", "steps: 0", "`steps`", *_render("avdit: {steps: 0}"), fix="from 1 to 200"),
    # Located where the expansion passes the limit: a4 already stands for 111,111 values.
    "alias_bomb": Case("script.yaml", "a4: &a4", "expands to more than", prepare=_alias_bomb, fix="aliasing"),
    "deep_nesting": Case("script.yaml", "deep: [[[", "nesting deeper than", prepare=_deep),
    "python_tag": Case("script.yaml", "!!python", "is not allowed", "description: A small lab.",
                       "description: !!python/object/apply:os.system [echo hi]", fix="plain text"),
    "huge_file": Case("script.yaml", "title: Tiny Test", "inputs are limited to 1 MiB", prepare=_huge),
    "nul_bytes": Case("script.yaml", "title: Tiny Test", "contains NUL bytes", prepare=_nul),
    "not_utf8": Case("script.yaml", "title: Tiny Test", "is not UTF-8", prepare=_latin1, fix="UTF-8"),
    "long_asset_path": Case("cast.yaml", "aaaa", "characters long", "assets/images/hero.png",
                            "assets/images/" + "a" * 3000 + ".png"),
    "long_asset_name": Case("cast.yaml", "bbbb", "bytes long", "assets/images/hero.png",
                            "assets/images/" + "b" * 300 + ".png"),
    "nul_in_path": Case("cast.yaml", "he\\0ro", "control characters", "[assets/images/hero.png]",
                        '["assets/images/he\\0ro.png"]'),
    "png_bomb": Case("cast.yaml", "hero.png", "too large to decode safely", prepare=_png_bomb, fix="downscale"),
    "script_not_mapping": Case("script.yaml", "- just", "must be a mapping", "title: Tiny Test\n",
                               "- just\n- a list\n", prepare=lambda p: (p / "script.yaml").write_text("- just\n- a list\n")),
    "too_many_scenes": Case("script.yaml", "INT. ROOM 099", "at most 99 scenes", prepare=_many_scenes,
                            fix="several films"),
    "too_many_beats": Case("script.yaml", "Beat 094", "at most 97 beats", prepare=_many_beats, fix="new scene"),
    "characters_mapping": Case("cast.yaml", "hero:", "`characters`", "  - id: hero\n", "  hero:\n    id: hero\n",
                               prepare=lambda p: _replace(p / "cast.yaml", "  - id: cat\n", "  cat:\n    id: cat\n")),
}
ALL = {**CASES, **EXTRA}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A folder holding one finished film (the mini project), its files' digests, and the assets."""
    base = tmp_path_factory.mktemp("corpus")
    script = write_project(base / "mini", {**_mini(), "title": "Tiny Test"})
    out = base / "out"
    proc = subprocess.run([*COMPOSE, str(script), "--out", str(out), "--quiet"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, _tree(out), build_assets(base / "assets")


def _mini() -> dict:
    from tests.fixtures.pipeline_kit import MINI_SCRIPT

    return {**MINI_SCRIPT, "scenes": [{**MINI_SCRIPT["scenes"][0], "beats": MINI_SCRIPT["scenes"][0]["beats"][:1]}]}


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): digest_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _compose(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "400", "PYTHONPATH": str(ROOT)}
    return subprocess.run([*COMPOSE, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def test_the_corpus_is_large():
    assert len(ALL) >= 40


@pytest.mark.parametrize("name", sorted(ALL))
def test_malformed_input_through_the_cli(tmp_path, finished, name):
    out, before, assets = finished
    script, target, line = break_project(tmp_path, assets, ALL[name])
    proc = _compose(script, "--out", out)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    located = [ln for ln in proc.stderr.splitlines() if ln.startswith(f"{target}:{line}:")]
    assert located, f"expected {target.name}:{line}: in:\n{proc.stderr[-3000:]}"
    assert ALL[name].message in located[0] and " (fix: " in located[0]
    assert ALL[name].fix in located[0].split(" (fix: ", 1)[1]
    assert _tree(out) == before  # the finished film and its state are untouched


FLAGS = {
    "attempts_negative": (["--max-attempts", "-1"], "--max-attempts -1", "from 1 to 10"),
    "attempts_zero": (["--max-attempts", "0"], "--max-attempts 0", "from 1 to 10"),
    "width_huge": (["--width", "100000"], "--width 100000", "from 64 to 1920"),
    "height_63": (["--height", "63"], "--height 63", "from 64 to 1080"),
    "width_odd": (["--width", "321"], "--width 321", "from 64 to 1920"),
    "seed_negative": (["--seed", "-5"], "--seed -5", "from 0"),
    "workers_zero": (["--workers", "0"], "--workers", "from 1 to 16"),
    "unknown_video": (["--video", "sora"], "--video", "choose from"),
}


@pytest.mark.parametrize("name", sorted(FLAGS))
def test_bad_flags_exit_2_naming_the_flag(tmp_path, finished, name):
    out, before, assets = finished
    flags, named, fix = FLAGS[name]
    proc = _compose(make_project(tmp_path, assets), "--out", out, *flags)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert named in proc.stderr and fix in proc.stderr and "Traceback" not in proc.stderr
    assert _tree(out) == before


def test_fountain_without_cues_or_cast(tmp_path, finished):
    """A Fountain screenplay with no cast named: exit 2 at line 1 with the fix; with --cast it
    validates even though nobody speaks (a silent film is a valid film)."""
    out, before, assets = finished
    script = make_project(tmp_path, assets)
    fountain = script.parent / "launch.fountain"
    fountain.write_text("EXT. LAUNCH PAD - DAWN\n\nThe capsule sits on the pad.\n")
    proc = _compose(fountain, "--out", out)
    assert proc.returncode == 2 and f"{fountain}:1:1:" in proc.stderr and "--cast" in proc.stderr
    ok = _compose("validate", fountain, "--cast", script.parent / "cast.yaml")
    assert ok.returncode == 0, ok.stderr
    assert _tree(out) == before


def test_the_root_cause_comes_first(tmp_path, finished):
    """A cast whose `characters` is a mapping: that problem is reported, not a speaker error per cue."""
    out, before, assets = finished
    script, target, line = break_project(tmp_path, assets, ALL["characters_mapping"])
    proc = _compose("validate", script)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0].startswith(f"{target}:{line}:")
    assert "unknown speaker" not in proc.stderr



@pytest.mark.parametrize("command", [[], ["voices"]])
def test_bad_input_is_refused_before_the_renderer_is_imported(tmp_path, finished, command):
    """A typo is reported without loading the graph, the mixer or the audition (about 1.8 s of imports):
    the command's own import log must not name them."""
    out, before, assets = finished
    script, target, line = break_project(tmp_path, assets, ALL["fps_zero"])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONPROFILEIMPORTTIME": "1"}
    proc = subprocess.run([*COMPOSE, *command, str(script), "--out", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 2 and f"{target}:{line}:" in proc.stderr
    imported = {ln.rsplit("|", 1)[1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    assert "orchestrator.inputs.loading" in imported  # the log is real
    assert not {"orchestrator.runner", "orchestrator.audition", "langgraph", "tools.stitch"} & imported
    assert _tree(out) == before
