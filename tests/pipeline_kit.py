"""Small real projects for end-to-end tests: the example's assets, a short script, a small frame."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "orbit"

MINI_SCRIPT = {
    "title": "Mini",
    "cast": "cast.yaml",
    "render": {"width": 320, "height": 180, "evaluators": []},
    "scenes": [
        {
            "heading": "INT. SPACE STATION MODULE - NIGHT",
            "characters": ["collins", "hopper"],
            "beats": [
                {"character": "COLLINS", "line": "The relays are fine."},
                {"character": "HOPPER", "line": "Then look at the cat."},
                {"character": "COLLINS", "line": "I will check again."},
            ],
        }
    ],
}


def write_project(folder: Path, script: dict | None = None) -> Path:
    """Copy the example's cast and assets into `folder` and write a script; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "assets").exists():
        shutil.copytree(EXAMPLE / "assets", folder / "assets")
        shutil.copy(EXAMPLE / "cast.yaml", folder / "cast.yaml")
    path = folder / "script.yaml"
    path.write_text(yaml.safe_dump(script or MINI_SCRIPT, sort_keys=False))
    return path


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "retries.jsonl").read_text().splitlines()]
