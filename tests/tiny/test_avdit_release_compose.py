"""`compose` with `render.avdit.format: multitalk` at tiny size, scored by the evaluators, and
`compose doctor` on a weights folder checked from safetensors headers alone."""
from __future__ import annotations

import copy
import json

import av
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from models.avdit.multitalk import model_sizes
from models.avdit.tiny import tiny_i2v_transformer, tiny_release_model, tiny_wav2vec
from orchestrator.cli import main
from tests.fixtures.pipeline_kit import MINI_SCRIPT, manifest, records, write_project
from tests.fixtures.release import release_state_dict
from tools.media.masks import load_masks
from tools.media.video import read_frames


def tiny_adapter(path, drop=None):
    sd = release_state_dict(seed=1, **model_sizes(tiny_release_model()))
    if drop:
        del sd[drop]
    save_file(sd, str(path))
    return path


def project(tmp_path, name, beats=2, **avdit):
    script = copy.deepcopy(MINI_SCRIPT)
    script["scenes"][0]["beats"] = script["scenes"][0]["beats"][:beats]
    script["render"] = {"video": "avdit", "width": 96, "height": 64, "max_attempts": 1,
                        "evaluators": ["lipsync", "binding"], "avdit": {"tiny": True, "steps": 2, **avdit}}
    return write_project(tmp_path / name, script)


def test_compose_renders_through_the_multitalk_format_and_scores_it(tmp_path):
    adapter = tiny_adapter(tmp_path / "multitalk.safetensors")
    path = project(tmp_path, "mt", format="multitalk", adapter=str(adapter))
    assert main([str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    run = tmp_path / "out" / "mini"
    assert manifest(run)["tools"]["video"][0] == "avdit"
    with av.open(str(run / "film.mp4")) as c:
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (96, 64)
    plan = json.loads((run / "plan.json").read_text())["shots"]
    assert len(list(read_frames(run / "film.mp4"))) == sum(round(s["duration"] * 25) for s in plan)
    scored = [r for r in records(run) if r["scores"]]
    names = {s["name"] for r in scored for s in r["scores"]}
    assert any(n.startswith("lipsync.offset[") for n in names) and any(n.startswith("binding[") for n in names)
    # The shot is staged by the animatic: its first frame conditions the model, its masks bind.
    shot = run / "shots" / "sc01_sh02" / "attempt-1"
    masks = load_masks(shot / "masks.npz")
    assert list(masks["labels"]) == ["collins"] and (masks["masks"] == 1).any()
    frames = list(read_frames(shot / "clip.mp4"))
    assert np.std(frames[0]) > 5 and len(frames) == masks["masks"].shape[0]


def test_compose_refuses_a_bad_adapter_and_a_mismatched_guidance(tmp_path, capsys):
    broken = tiny_adapter(tmp_path / "broken.safetensors", drop="blocks.1.audio_cross_attn.proj.weight")
    path = project(tmp_path, "bad", beats=1, format="multitalk", adapter=str(broken))
    assert main([str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "blocks.1.audio_cross_attn.proj.weight" in capsys.readouterr().err
    path = project(tmp_path, "guid", beats=1, format="infinitetalk", guidance="region")
    assert main([str(path), "--out", str(tmp_path / "out2"), "--quiet"]) == 2
    assert "guidance: multitalk" in capsys.readouterr().err


@pytest.fixture()
def weights_dir(tmp_path):
    """A WEIGHTS_DIR in the documented layout with tiny real files (configs + safetensors)."""
    root = tmp_path / "weights"
    base = root / "Wan2.1-I2V-14B-480P-Diffusers"
    for part in ("vae", "text_encoder", "tokenizer", "image_encoder"):
        (base / part).mkdir(parents=True)
    torch.manual_seed(0)
    tiny_i2v_transformer().save_pretrained(base / "transformer")
    tiny_wav2vec().save_pretrained(root / "chinese-wav2vec2-base")
    (root / "MeiGen-MultiTalk").mkdir()
    tiny_adapter(root / "MeiGen-MultiTalk" / "multitalk.safetensors")
    return root


def test_doctor_checks_a_folder_from_headers(weights_dir, capsys):
    assert main(["doctor", str(weights_dir)]) == 0
    assert "format: multitalk" in capsys.readouterr().out
    adapter = weights_dir / "MeiGen-MultiTalk" / "multitalk.safetensors"
    sd = release_state_dict(seed=1, **model_sizes(tiny_release_model()))
    sd["audio_proj.proj2.bias"] = sd["audio_proj.proj2.bias"][:-1]
    del sd["blocks.0.norm_x.bias"]
    sd["blocks.0.audio_cross_attn.q_norm.weight"] = torch.ones(12)
    save_file(sd, str(adapter))
    assert main(["doctor", str(weights_dir)]) == 2
    out = capsys.readouterr().out
    assert "missing key(s): blocks.0.norm_x.bias" in out
    assert "extra key(s): blocks.0.audio_cross_attn.q_norm.weight" in out
    assert "audio_proj.proj2.bias has shape [23], expected [24]" in out
    assert main(["doctor", str(weights_dir), "--format", "infinitetalk"]) == 2
    assert "InfiniteTalk/single/infinitetalk.safetensors: missing" in capsys.readouterr().out
