"""`compose` renders a film end to end with the `avdit` backend at tiny random weights."""
from __future__ import annotations

import copy
import json

import av

from orchestrator.cli import main
from tests.fixtures.pipeline_kit import MINI_SCRIPT, manifest, write_project
from tools.media.masks import load_masks


def test_compose_with_avdit_tiny(tmp_path):
    script = copy.deepcopy(MINI_SCRIPT)
    script["scenes"][0]["beats"] = script["scenes"][0]["beats"][:2]
    script["render"] = {"video": "avdit", "width": 96, "height": 64, "evaluators": [],
                        "avdit": {"tiny": True, "steps": 2}}
    path = write_project(tmp_path / "proj", script)
    assert main([str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    run = tmp_path / "out" / "mini"
    assert manifest(run)["tools"]["video"][0] == "avdit"
    with av.open(str(run / "film.mp4")) as c:
        v = c.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height) == (96, 64)
        frames = sum(1 for _ in c.decode(video=0))
    plan_frames = sum(round(s["duration"] * 25) for s in json.loads((run / "plan.json").read_text())["shots"])
    assert frames == plan_frames
    masks = load_masks(next(run.glob("shots/sc01_sh02/attempt-1/masks.npz")))
    assert list(masks["labels"]) == ["collins"] and (masks["masks"] == 1).any()
