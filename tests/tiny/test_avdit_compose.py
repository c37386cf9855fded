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


def test_predict_mode_routing_from_config_changes_the_shot(tmp_path):
    """`render.avdit.mask_source: router` with an adapter trained with `--router` (compose train, tiny)
    routes by the learned router at generation: the masks and the clip differ from layout boxes; an
    adapter without a router head is refused with exit 2 and the fix."""
    from models.avdit.train import main as train_main

    adapters = tmp_path / "runs"
    common = ["--tiny", "--synthetic", "2", "--steps", "3", "--rank", "4", "--save-every", "100", "--skip-stage-a"]
    assert train_main(["--stage", "b", "--out", str(adapters / "router"), "--router"] + common) == 0
    assert train_main(["--stage", "b", "--out", str(adapters / "plain")] + common) == 0

    def render(name: str, **avdit) -> tuple[int, object]:
        script = copy.deepcopy(MINI_SCRIPT)
        script["scenes"][0]["beats"] = script["scenes"][0]["beats"][:1]
        script["render"] = {"video": "avdit", "width": 96, "height": 64, "evaluators": [],
                            "avdit": {"tiny": True, "steps": 2, **avdit}}
        path = write_project(tmp_path / name, script)
        code = main([str(path), "--out", str(tmp_path / name / "out"), "--quiet"])
        shot = tmp_path / name / "out" / "mini" / "shots" / "sc01_sh02" / "attempt-1"
        return code, shot

    adapter = str(adapters / "router" / "adapter.safetensors")
    code_r, routed = render("router", adapter=adapter, mask_source="router")
    code_b, boxed = render("boxes", adapter=adapter, mask_source="boxes")
    assert code_r == code_b == 0
    assert (load_masks(routed / "masks.npz")["masks"] != load_masks(boxed / "masks.npz")["masks"]).any()
    assert (routed / "clip.mp4").read_bytes() != (boxed / "clip.mp4").read_bytes()
    code, _ = render("plain", adapter=str(adapters / "plain" / "adapter.safetensors"), mask_source="router")
    assert code == 2
