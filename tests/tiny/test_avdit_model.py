"""The avdit model at tiny size with the real diffusers/transformers classes: zero-init equivalence,
routing isolation, guidance arithmetic, router masks and safe weight loading."""
from __future__ import annotations

import pytest
import torch

from models.avdit.adapter import trigger_attention
from models.avdit.guidance import Guidance, combine, guided_noise
from models.avdit.router import (
    box_labels,
    labels_to_route,
    labels_to_video,
    masks_from_attention,
    router_losses,
    token_groups,
    word_spans,
)
from models.avdit.tiny import TinyPrompt, tiny_model
from models.errors import ModelError
from models.loading import load_state_dict, save_state_dict

PROMPT = "<sub1> COLLINS talks to <sub2> HOPPER at dusk"


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=0)


@pytest.fixture(scope="module")
def inputs(model):
    torch.manual_seed(1)
    latents = torch.randn(1, 4, 3, 8, 8)  # 3 latent frames (9 video frames), 4x4 tokens each
    embeds, lens, _ = TinyPrompt()([PROMPT])
    audio = model.audio_encoder(torch.randn(2, 16000 * 9 // 25), 9, 25.0)[None]  # (1, 2, 3, K, D)
    labels = box_labels(torch.tensor([[0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 1.0]]), (3, 4, 4))
    return latents, torch.tensor([700.0]), embeds, lens, audio, labels


def perturb_output_projections(model, seed=3):
    """Give the zero-initialised audio output projections weights so audio has an effect."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.audio_layers:
            layer.to_out.weight.copy_(torch.randn(layer.to_out.weight.shape, generator=g) * 0.5)


def test_zero_init_equals_base_transformer(model, inputs):
    latents, t, embeds, lens, audio, labels = inputs
    with torch.no_grad():
        base = model.transformer(latents, t, embeds, return_dict=False)[0]
        with_audio = model(latents, t, embeds, audio=audio, route=labels_to_route(labels, 2)[None], text_lens=lens)
    assert torch.equal(base, with_audio)
    assert all(float(layer.to_out.weight.detach().abs().sum()) == 0 for layer in model.audio_layers)


def test_routing_isolation_and_audio_effect():
    model = tiny_model(seed=0)
    perturb_output_projections(model)
    torch.manual_seed(2)
    hidden = torch.randn(1, 3 * 16, 24)
    audio = torch.randn(1, 2, 3, 2, 24)
    labels = box_labels(torch.tensor([[0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 1.0]]), (3, 4, 4))
    route = labels_to_route(labels, 2)[None]
    changed = audio.clone()
    changed[:, 0] = torch.randn(1, 3, 2, 24)  # a different speech stream for character 1
    outside = (labels.flatten() != 1)
    for layer in model.audio_layers:
        a = layer(hidden, audio, route, (3, 4, 4))
        b = layer(hidden, changed, route, (3, 4, 4))
        assert torch.equal(a[0, outside], b[0, outside]), "stream 1 leaked outside character 1's mask"
        assert (a[0, ~outside] - b[0, ~outside]).abs().max() > 1e-3, "stream 1 had no effect on character 1"
    # Negative control: without routing the change reaches everyone.
    a = model.audio_layers[0](hidden, audio, None, (3, 4, 4))
    b = model.audio_layers[0](hidden, changed, None, (3, 4, 4))
    assert (a[0, outside] - b[0, outside]).abs().max() > 1e-3


def test_audio_frame_locality():
    model = tiny_model(seed=0)
    perturb_output_projections(model)
    hidden = torch.randn(1, 3 * 16, 24)
    audio = torch.randn(1, 1, 3, 2, 24)
    changed = audio.clone()
    changed[:, :, 2] += 1.0  # only latent frame 2's audio
    layer = model.audio_layers[0]
    diff = (layer(hidden, audio, None, (3, 4, 4)) - layer(hidden, changed, None, (3, 4, 4))).abs().view(3, 16, -1)
    assert float(diff[:2].max()) == 0.0 and float(diff[2].max()) > 1e-3


def test_region_guidance_confines_audio_to_mask(inputs):
    model = tiny_model(seed=0)
    perturb_output_projections(model)
    latents, t, embeds, lens, audio, labels = inputs
    neg, neg_lens, _ = TinyPrompt()([""])
    route = labels_to_route(labels, 2)[None]
    mask = (labels == 1).float().repeat_interleave(2, 1).repeat_interleave(2, 2)[None, None]
    guide = Guidance("region", text_scale=5.0, audio_scale=4.0)
    changed = audio.clone()
    changed[:, 0] = audio[:, 0].flip(1)
    with torch.no_grad():
        a = guided_noise(model, latents, t, embeds, neg, guide, audio, route, mask, lens, neg_lens)
        b = guided_noise(model, latents, t, embeds, neg, guide, changed, route, mask, lens, neg_lens)
    outside = mask.expand_as(a) == 0
    assert torch.equal(a[outside], b[outside])
    assert (a - b).abs().max() > 1e-4
    glob = Guidance("audio", 5.0, 4.0)
    with torch.no_grad():
        ga = guided_noise(model, latents, t, embeds, neg, glob, audio, route, mask, lens, neg_lens)
        gb = guided_noise(model, latents, t, embeds, neg, glob, changed, route, mask, lens, neg_lens)
    assert (ga - gb)[outside].abs().max() > 1e-6  # global audio CFG is not confined (control)


def test_batched_passes_match_separate_forwards(inputs):
    model = tiny_model(seed=0)
    perturb_output_projections(model)
    latents, t, embeds, lens, audio, labels = inputs
    neg, neg_lens, _ = TinyPrompt()([""])
    route = labels_to_route(labels, 2)[None]
    with torch.no_grad():
        got = guided_noise(model, latents, t, embeds, neg, Guidance("audio", 3.0, 2.0), audio, route, None, lens, neg_lens)
        u = model(latents, t, neg, text_lens=neg_lens)
        te = model(latents, t, embeds, text_lens=lens)
        ta = model(latents, t, embeds, audio=audio, route=route, text_lens=lens)
    assert torch.allclose(got, combine(u, te, 3.0, ta, 2.0), atol=1e-5)


def test_guidance_arithmetic_on_known_tensors():
    u, t, ta, noid = torch.zeros(4), torch.ones(4), torch.full((4,), 3.0), torch.full((4,), 2.0)
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0])
    assert torch.equal(combine(u, t, 5.0), torch.full((4,), 5.0))
    # eps_u + s_t (eps_t - eps_u) + s_a M (eps_ta - eps_t) = 0 + 5 + 4 * M * 2
    assert torch.equal(combine(u, t, 5.0, ta, 4.0, mask), torch.tensor([13.0, 5.0, 13.0, 5.0]))
    assert torch.equal(combine(u, t, 5.0, ta, 4.0), torch.full((4,), 13.0))
    assert torch.equal(combine(u, t, 5.0, ta, 4.0, mask, noid, 2.0), torch.tensor([15.0, 7.0, 15.0, 7.0]))
    with pytest.raises(ValueError):
        Guidance("loud")
    assert Guidance("text").passes == 2 and Guidance("region").passes == 3 and Guidance("region", id_scale=1).passes == 4


def test_masks_recovered_from_synthetic_attention_map():
    f, h, w = 4, 8, 8
    truth = torch.zeros(f, h, w, dtype=torch.long)
    truth[:, 1:7, 0:3] = 1
    truth[:, 2:8, 5:8] = 2
    g = torch.Generator().manual_seed(0)
    maps = 0.05 * torch.rand(2, f, h, w, generator=g)
    maps[0] += (truth == 1).float()
    maps[1] += 0.5 * (truth == 2).float()  # a weaker but clear second character
    got = masks_from_attention(maps, spatial=0, temporal=1)
    assert float((got == truth).float().mean()) > 0.97
    flat = masks_from_attention(torch.full((2, f, h, w), 0.3))  # no evidence: no character wins
    assert not torch.equal(flat, truth)


def test_trigger_attention_excludes_padding(model, inputs):
    latents, t, embeds, lens, _, _ = inputs
    attn = model.transformer.blocks[0].attn2
    hidden = torch.randn(1, 48, 24)
    context = model.transformer.condition_embedder.text_embedder(embeds)
    groups = [[0, 1], [4, 5]]
    with torch.no_grad():
        real = trigger_attention(attn, hidden, context, lens, groups)
        padded = trigger_attention(attn, hidden, context, None, groups)
    all_real = trigger_attention(attn, hidden, context, lens, [list(range(int(lens)))])
    assert torch.allclose(all_real, torch.ones_like(all_real), atol=1e-5)  # real tokens hold all mass
    assert float(real.sum()) > float(padded.sum()) * 5  # 500 padding keys would dilute the triggers


def test_token_groups_one_character_per_token():
    offsets = TinyPrompt()([PROMPT])[2][0]
    spans = [word_spans(PROMPT, ["<sub1>", "collins"]), word_spans(PROMPT, ["<sub2>", "hopper"])]
    assert token_groups(offsets, spans) == [[0, 1], [4, 5]]
    shared = [word_spans(PROMPT, ["collins", "talks"]), word_spans(PROMPT, ["talks"])]
    assert token_groups(offsets, shared) == [[1], []]


def test_box_labels_and_video_upsampling():
    labels = box_labels(torch.tensor([[0.0, 0.0, 0.5, 1.0], [0.5, 0.5, 1.0, 1.0]]), (2, 4, 4))
    assert labels[0, 0].tolist() == [1, 1, 0, 0] and labels[0, 3].tolist() == [1, 1, 2, 2]
    video = labels_to_video(labels, 5, 16, 16)
    assert video.shape == (5, 16, 16) and video.dtype == torch.uint8
    assert int(video[0, 15, 15]) == 2 and int(video[0, 0, 15]) == 0


def test_router_losses_prefer_smooth_correct_masks():
    target = torch.zeros(1, 2 * 4 * 4, dtype=torch.long)
    target.view(2, 4, 4)[:, :, 2:] = 1
    good = torch.nn.functional.one_hot(target, 2).float() * 8
    noisy = torch.randn(1, 32, 2, generator=torch.Generator().manual_seed(0)) * 8
    lg, ln = router_losses([good, good], target, (2, 4, 4)), router_losses([good, noisy], target, (2, 4, 4))
    assert lg["ce"] < ln["ce"] and lg["tv"] < ln["tv"] and lg["layer_var"] < ln["layer_var"]


def test_loading_refuses_unsafe_formats(tmp_path):
    path = save_state_dict({"w": torch.ones(2)}, tmp_path / "a.safetensors", {"k": 1})
    assert torch.equal(load_state_dict(path)["w"], torch.ones(2))
    (tmp_path / "model.pkl").write_bytes(b"not allowed")
    with pytest.raises(ModelError, match="unsupported format"):
        load_state_dict(tmp_path / "model.pkl")
    import pickle

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"w": object()}))
    with pytest.raises(ModelError, match="not a plain tensor checkpoint"):
        load_state_dict(tmp_path / "evil.pt")
    with pytest.raises(ModelError, match="does not exist"):
        load_state_dict(tmp_path / "missing.safetensors")


def test_pipeline_refines_masks_from_attention():
    from diffusers import FlowMatchEulerDiscreteScheduler

    from models.avdit.pipeline import AvditPipeline
    from models.avdit.tiny import tiny_vae

    pipe = AvditPipeline(tiny_model(seed=0), tiny_vae(), FlowMatchEulerDiscreteScheduler(shift=3.0), TinyPrompt())
    embeds, lens, offsets = pipe.prompt_encoder([PROMPT, ""])
    groups = token_groups(offsets[0], [word_spans(PROMPT, ["<sub1>", "collins"]), word_spans(PROMPT, ["<sub2>", "hopper"])])
    out = pipe(embeds[:1], embeds[1:], torch.randn(2, 16000 * 9 // 25), torch.tensor([[0, 0, 0.5, 1], [0.5, 0, 1, 1]]),
               9, 32, 32, text_lens=lens[:1], negative_lens=lens[1:], token_groups=groups, steps=2,
               generator=torch.Generator().manual_seed(0))
    assert out.video.shape == (9, 32, 32, 3) and out.labels.shape == (3, 2, 2)
    assert pipe.model.captured_maps() is not None  # the attention path ran
    assert all((out.labels == k).any() for k in (1, 2))  # every character keeps tokens
