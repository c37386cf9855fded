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
from models.avdit.tiny import tiny_clip_vision, tiny_i2v_transformer, tiny_release_model, tiny_vae, tiny_wav2vec
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


def test_compose_renders_through_the_multitalk_format_and_scores_it(tmp_path, monkeypatch):
    from models.avdit.i2v import I2VPipeline

    calls = []
    call = I2VPipeline.__call__

    def spy(self, *args, **kwargs):
        calls.append((np.asarray(args[3]), args[4].numpy()))  # the first frame and the router labels
        return call(self, *args, **kwargs)

    monkeypatch.setattr(I2VPipeline, "__call__", spy)
    adapter = tiny_adapter(tmp_path / "multitalk.safetensors")
    path = project(tmp_path, "mt", format="multitalk", adapter=str(adapter))
    assert main([str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    # Each shot is conditioned on its staged frame, and its characters' tokens carry their labels
    # (the wide shot holds both characters of the scene).
    assert len(calls) == 3 and all(np.std(frame) > 5 for frame, _ in calls)
    assert all((labels > 0).any() for _, labels in calls)
    assert set(np.unique(np.concatenate([labels.ravel() for _, labels in calls]))) == {0, 1, 2}
    run = tmp_path / "out" / "mini"
    assert manifest(run)["tools"]["video"][0] == "avdit"
    with av.open(str(run / "film.mp4")) as c:
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (96, 64)
    plan = json.loads((run / "plan.json").read_text())["shots"]
    assert len(list(read_frames(run / "film.mp4"))) == sum(round(s["duration"] * 25) for s in plan)
    scored = [r for r in records(run) if r["scores"]]
    names = {s["name"] for r in scored for s in r["scores"]}
    # Every speaking shot here is a close-up: lip-sync judges it; binding (one speaker's mouth against
    # the other visible mouths) has no second face to judge.
    assert {n.split("[")[0] for n in names} == {"lipsync.offset", "lipsync.confidence"}
    assert {r["shot"] for r in scored} == {s["id"] for s in plan if s["speech"]}
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
    """A WEIGHTS_DIR in the documented layout with every part as a tiny real model on disk."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    root = tmp_path / "weights"
    base = root / "Wan2.1-I2V-14B-480P-Diffusers"
    torch.manual_seed(0)
    tiny_i2v_transformer().save_pretrained(base / "transformer")
    tiny_vae().save_pretrained(base / "vae")
    tiny_clip_vision().save_pretrained(base / "image_encoder")
    words = Tokenizer(models.WordLevel({"<pad>": 0, "</s>": 1, "<unk>": 2, "collins": 3, "talks": 4}, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=words, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(base / "tokenizer")
    UMT5EncoderModel(UMT5Config(vocab_size=5, d_model=32, d_kv=8, d_ff=16, num_layers=1, num_heads=2)).save_pretrained(
        base / "text_encoder")
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
    (weights_dir / "InfiniteTalk" / "multi").mkdir(parents=True)
    tiny_adapter(weights_dir / "InfiniteTalk" / "multi" / "infinitetalk.safetensors")
    assert main(["doctor", str(weights_dir), "--format", "infinitetalk"]) == 0  # multi/ is found as well
    assert "InfiniteTalk/multi/infinitetalk.safetensors" in capsys.readouterr().out


@pytest.mark.parametrize("offload", [False, True])
def test_pipeline_loads_the_documented_folder(weights_dir, offload, tmp_path):
    """`I2VPipeline.from_local` on the folder (CPU, fp32): the adapter lands in our layers, a fused
    speed LoRA changes exactly its weight, and a shot generates."""
    from models.avdit.doctor import folder_paths
    from models.avdit.i2v import I2VPipeline, Streaming

    lora = tmp_path / "speed.safetensors"
    down, up = torch.randn(4, 24), torch.randn(24, 4)
    save_file({"diffusion_model.blocks.1.self_attn.q.lora_down.weight": down,
               "diffusion_model.blocks.1.self_attn.q.lora_up.weight": up}, str(lora))
    model_dir, wav2vec_dir, adapter = folder_paths(weights_dir, "multitalk")
    pipe = I2VPipeline.from_local(model_dir, wav2vec_dir, adapter, "multitalk", offload=offload, lora=lora,
                                  lora_scale=0.5, dtype=torch.float32, device="cpu")
    sd = release_state_dict(seed=1, **model_sizes(tiny_release_model()))
    assert torch.equal(pipe.model.audio_layers[1].to_v.weight, sd["blocks.1.audio_cross_attn.kv_linear.weight"][24:])
    torch.manual_seed(0)
    plain = tiny_i2v_transformer()
    fused = pipe.model.transformer.blocks[1].attn1.to_q.weight
    torch.testing.assert_close(fused, plain.blocks[1].attn1.to_q.weight + 0.5 * up @ down)
    assert torch.equal(pipe.model.transformer.blocks[0].attn1.to_q.weight, plain.blocks[0].attn1.to_q.weight)
    embeds, _, _ = pipe.prompt_encoder(["collins talks", ""])
    frame = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    labels = torch.zeros(4, 4, dtype=torch.long)
    labels[:, :2] = 1
    out = pipe(embeds[:1], embeds[1:], torch.randn(1, 16000), frame, labels, 9, steps=1, streaming=Streaming(9, 5))
    assert out.video.shape == (9, 64, 64, 3)


def test_cache_version_names_the_format_and_settings():
    """The generator's version joins every shot's cache key: a clip of one format or setting is never
    reused for another."""
    from tools.video.avdit import create

    ours = create(tiny=True, steps=2)
    a = create(tiny=True, steps=2, format="multitalk")
    b = create(tiny=True, steps=3, format="multitalk")
    c = create(tiny=True, steps=2, format="infinitetalk")
    assert len({ours.version, a.version, b.version, c.version}) == 4
    assert a.version == create(tiny=True, steps=2, format="multitalk").version  # and stable
