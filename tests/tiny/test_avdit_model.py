"""The avdit model at tiny size with the real diffusers/transformers classes. Each property is checked
against an independent computation written out here (loops, explicit formulas, diffusers' own
processor), not against the code's own helpers."""
from __future__ import annotations

import pytest
import torch
from diffusers.models.transformers.transformer_wan import WanAttnProcessor

from models.avdit.adapter import trigger_attention
from models.avdit.audio import latent_frames, video_frames_for, window_per_latent_frame
from models.avdit.guidance import Guidance, guided_noise
from models.avdit.router import (
    box_labels,
    labels_to_route,
    labels_to_video,
    token_groups,
    word_spans,
)
from models.avdit.tiny import TinyPrompt, tiny_model
from models.errors import ModelError
from models.loading import load_state_dict, save_state_dict

PROMPT = "<sub1> COLLINS talks to <sub2> HOPPER at dusk"
GRID = (3, 4, 4)
HALVES = torch.tensor([[0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 1.0]])


def perturb(model, seed=3, bias=True, router=False):
    """Give the zero-initialised audio output projections (and biases) weights so audio has an effect."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.audio_layers:
            layer.to_out.weight.copy_(torch.randn(layer.to_out.weight.shape, generator=g) * 0.5)
            if bias:
                layer.to_out.bias.copy_(torch.randn(layer.to_out.bias.shape, generator=g))
        if router and model.router is not None:
            for p in model.router.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
    return model


@pytest.fixture(scope="module")
def inputs():
    model = tiny_model(seed=0)
    torch.manual_seed(1)
    latents = torch.randn(1, 4, 3, 8, 8)  # 3 latent frames (9 video frames), 4x4 tokens each
    embeds, lens, offsets = TinyPrompt()([PROMPT])
    neg, neg_lens, _ = TinyPrompt()([""])
    audio = model.audio_encoder(torch.randn(2, 16000 * 9 // 25), 9, 25.0)[None]  # (1, 2, 3, K, D)
    labels = box_labels(HALVES, GRID)
    groups = [[0, 1], [4, 5]]
    return dict(latents=latents, t=torch.tensor([700.0]), embeds=embeds, lens=lens, neg=neg, neg_lens=neg_lens,
                audio=audio, labels=labels, route=labels_to_route(labels, 2)[None], groups=groups)


def reference_audio_layer(layer, hidden, audio, route, grid, identity=None, keep=None):
    """The audio cross-attention written token by token: frame f's query attends over stream s's
    frame-f tokens (plus the stream's identity tokens when kept), each head by an explicit softmax,
    and the *projected* result (bias included) is weighted by the route."""
    b, n, d = hidden.shape
    f, hh, ww = grid
    heads, hd = layer.heads, d // layer.heads
    q_all = layer.norm_q(layer.to_q(layer.norm(hidden)))
    out = torch.zeros(b, n, d)
    for bi in range(b):
        for si in range(audio.shape[1]):
            for tok in range(n):
                toks = audio[bi, si, tok // (hh * ww)]
                if identity is not None and (keep is None or bool(keep[bi, si])):
                    toks = torch.cat([toks, identity[bi, si]])
                k, v = layer.norm_k(layer.to_k(toks)), layer.to_v(toks)
                per_head = []
                for h in range(heads):
                    sl = slice(h * hd, (h + 1) * hd)
                    w = torch.softmax(k[:, sl] @ q_all[bi, tok, sl] / hd ** 0.5, 0)
                    per_head.append(w @ v[:, sl])
                r = 1.0 if route is None else float(route[bi, si, tok])
                out[bi, tok] += r * layer.to_out(torch.cat(per_head))
    return out


def test_zero_init_equals_base_transformer(inputs):
    model = tiny_model(seed=0)
    i = inputs
    with torch.no_grad():
        base = model.transformer(i["latents"], i["t"], i["embeds"], return_dict=False)[0]
        with_audio = model(i["latents"], i["t"], i["embeds"], audio=i["audio"], route=i["route"], text_lens=i["lens"])
    assert torch.equal(base, with_audio)


@pytest.mark.parametrize("frames,context", [(9, 0), (13, 1), (17, 2)])
def test_windows_follow_wan_vae_frame_grouping(frames, context):
    feats = torch.arange(frames, dtype=torch.float32).view(1, frames, 1)
    win = window_per_latent_frame(feats, context)[0, :, :, 0]
    lat = (frames - 1) // 4 + 1
    assert latent_frames(frames) == lat and win.shape == (lat, 4 + 2 * context)
    for i in range(lat):
        first, last = (0, 0) if i == 0 else (4 * i - 3, 4 * i)  # latent 0 = frame 0; latent i = frames 4i-3..4i
        want = [min(max(j, 0), frames - 1) for j in range(first - 3 * (i == 0) - context, last + context + 1)]
        assert win[i].tolist() == want, f"latent frame {i}"
    assert video_frames_for(1.0, 25) == 25 and video_frames_for(0.9, 25) == 25 and video_frames_for(0.2, 25) == 5
    with pytest.raises(ValueError):
        latent_frames(10)


def test_audio_layer_matches_token_by_token_reference():
    model = perturb(tiny_model(seed=0))
    g = torch.Generator().manual_seed(2)
    hidden = torch.randn(1, 48, 24, generator=g)
    audio = torch.randn(1, 2, 3, 2, 24, generator=g)
    labels = box_labels(torch.tensor([[0.0, 0.0, 0.6, 1.0], [0.4, 0.2, 1.0, 0.9]]), GRID)
    route = labels_to_route(labels, 2)[None] * 0.75  # soft weights must scale the whole output
    identity = torch.randn(1, 2, 3, 24, generator=g)
    keep = torch.tensor([[True, False]])
    with torch.no_grad():
        for layer in model.audio_layers:
            for args in [(route, None, None), (None, None, None), (route, identity, None), (route, identity, keep)]:
                got = layer(hidden, audio, args[0], GRID, args[1], args[2])
                assert torch.allclose(got, reference_audio_layer(layer, hidden, audio, *args[:1], GRID, *args[1:]), atol=1e-5)


def test_audio_reaches_only_its_own_frame():
    model = perturb(tiny_model(seed=0))
    layer = model.audio_layers[1]
    hidden = torch.randn(1, 48, 24)
    audio = torch.randn(1, 1, 3, 2, 24)
    for f in range(3):
        changed = audio.clone()
        changed[:, :, f] += 1.0
        with torch.no_grad():
            diff = (layer(hidden, audio, None, GRID) - layer(hidden, changed, None, GRID)).abs().view(3, 16, -1).amax((1, 2))
        assert diff[f] > 1e-3 and all(float(diff[o]) == 0.0 for o in range(3) if o != f), f"frame {f}: {diff}"


def test_route_isolates_streams_and_keeps_background_exactly_base(inputs):
    i = inputs
    model = perturb(tiny_model(seed=0))  # output weights *and* biases nonzero
    with torch.no_grad():
        base = model.transformer(i["latents"], i["t"], i["embeds"], return_dict=False)[0]
        zero_route = model(i["latents"], i["t"], i["embeds"], audio=i["audio"], route=torch.zeros(1, 2, 48), text_lens=i["lens"])
        routed = model(i["latents"], i["t"], i["embeds"], audio=i["audio"], route=i["route"], text_lens=i["lens"])
    assert torch.equal(zero_route, base), "with every route zero, no audio (nor its bias) may reach any token"
    assert (routed - base).abs().max() > 1e-3
    g = torch.Generator().manual_seed(5)
    hidden = torch.randn(1, 48, 24, generator=g)
    changed = i["audio"].clone()
    changed[:, 0] = torch.randn(changed[:, 0].shape, generator=g)
    labels = box_labels(torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]), GRID)
    route = labels_to_route(labels, 2)[None]
    outside, background = labels.flatten() != 1, labels.flatten() == 0
    for layer in model.audio_layers:
        with torch.no_grad():
            a, b = layer(hidden, i["audio"], route, GRID), layer(hidden, changed, route, GRID)
        assert torch.equal(a[0, outside], b[0, outside]), "stream 1 leaked outside character 1's mask"
        assert (a[0, ~outside] - b[0, ~outside]).abs().max() > 1e-3, "stream 1 had no effect on character 1"
        assert float(a[0, background].abs().max()) == 0.0, "the background received audio output (bias)"


def test_audio_query_reads_the_stream_after_text_attention(inputs):
    i = inputs
    model = perturb(tiny_model(seed=0))
    seen, got = {}, {}
    block = model.transformer.blocks[1]
    hooks = [
        block.norm2.register_forward_pre_hook(lambda m, a: seen.__setitem__("x", a[0])),
        block.attn2.register_forward_pre_hook(lambda m, a, k: seen.update(norm=a[0], ctx=k.get("encoder_hidden_states", a[1] if len(a) > 1 else None)), with_kwargs=True),
        model.audio_layers[1].register_forward_hook(lambda m, a, o: got.__setitem__("h", a[0])),
    ]
    try:
        with torch.no_grad():
            model(i["latents"], i["t"], i["embeds"], audio=i["audio"], route=i["route"], text_lens=i["lens"])
            text = WanAttnProcessor()(block.attn2, seen["norm"], seen["ctx"])
    finally:
        for h in hooks:
            h.remove()
    assert torch.allclose(got["h"], seen["x"] + text, atol=1e-5)


def separate(model, i, prompt, audio, identity=None, mask=None):
    """One conditioning evaluated alone (its own forward)."""
    embeds, lens = (i["embeds"], i["lens"]) if prompt else (i["neg"], i["neg_lens"])
    with torch.no_grad():
        return model(i["latents"], i["t"], embeds, audio=i["audio"] if audio else None, route=i["route"],
                     text_lens=lens, identity=identity).float()


def test_guidance_modes_follow_their_formulas(inputs):
    i = inputs
    model = perturb(tiny_model(seed=0))
    model.add_identity_tokens("collins", 3, std=1.0)
    names = ["collins", "hopper"]
    u, t = separate(model, i, False, False), separate(model, i, True, False)
    ua, ta = separate(model, i, False, True, names), separate(model, i, True, True, names)
    ta_noid = separate(model, i, True, True, None)
    assert (ta - ta_noid).abs().max() > 1e-4  # the identity tokens matter
    mask = (i["labels"] == 1).float().repeat_interleave(2, 1).repeat_interleave(2, 2)[None, None]
    st, sa, sid = 5.0, 3.0, 4.0
    want = {
        "none": ta,
        "text": ua + st * (ta - ua),
        "global": u + st * (t - u) + sa * (ta - t),
        "region": u + st * (t - u) + sa * mask * (ta - t),
    }
    for mode, expected in want.items():
        for id_scale in (1.0, sid):
            g = Guidance(mode, st, sa, id_scale)
            with torch.no_grad():
                got = guided_noise(model, i["latents"], i["t"], i["embeds"], i["neg"], g, i["audio"], i["route"], mask,
                                   i["lens"], i["neg_lens"], identity=names)
            full = expected + (sid - 1.0) * (ta - ta_noid) if id_scale != 1.0 else expected
            assert torch.allclose(got, full, atol=1e-4), f"{mode} id_scale={id_scale}"
    assert [Guidance(m).passes for m in ("none", "text", "global", "region")] == [1, 2, 3, 3]
    assert Guidance("text", id_scale=4.0).passes == 3
    with pytest.raises(ModelError):
        Guidance("audio")
    with pytest.raises(ModelError, match="mask"):
        Guidance("region").combine([u, t, ta])


def test_text_only_guidance_applies_no_audio_cfg(inputs):
    """Changing the audio moves the `text` guided output exactly as much as the conditional pass
    (no audio extrapolation); `global` moves it by the audio scale."""
    i = inputs
    model = perturb(tiny_model(seed=0))
    other = i["audio"].flip(2)
    with torch.no_grad():
        def run(g, audio):
            return guided_noise(model, i["latents"], i["t"], i["embeds"], i["neg"], g, audio, i["route"], None,
                                i["lens"], i["neg_lens"])
        d_cond = (model(i["latents"], i["t"], i["embeds"], audio=i["audio"], route=i["route"], text_lens=i["lens"])
                  - model(i["latents"], i["t"], i["embeds"], audio=other, route=i["route"], text_lens=i["lens"])).abs().max()
        d_text = (run(Guidance("text", 5.0), i["audio"]) - run(Guidance("text", 5.0), other)).abs().max()
        d_glob = (run(Guidance("global", 5.0, 9.0), i["audio"]) - run(Guidance("global", 5.0, 9.0), other)).abs().max()
    assert float(d_text) < 2.5 * float(d_cond)  # text CFG reaches audio only through the prompt's effect
    assert float(d_glob) > 6.0 * float(d_cond)


def test_region_guidance_confines_audio_to_mask(inputs):
    i = inputs
    model = perturb(tiny_model(seed=0))
    mask = (i["labels"] == 1).float().repeat_interleave(2, 1).repeat_interleave(2, 2)[None, None]
    changed = i["audio"].clone()
    changed[:, 0] = i["audio"][:, 0].flip(1)
    outside = mask.expand(1, 4, 3, 8, 8) == 0

    def run(mode, audio):
        with torch.no_grad():
            return guided_noise(model, i["latents"], i["t"], i["embeds"], i["neg"], Guidance(mode, 5.0, 4.0), audio,
                                i["route"], mask, i["lens"], i["neg_lens"])
    a, b = run("region", i["audio"]), run("region", changed)
    assert torch.equal(a[outside], b[outside]) and (a - b).abs().max() > 1e-4
    assert (run("global", i["audio"]) - run("global", changed))[outside].abs().max() > 1e-6  # control


def test_masks_from_attention_use_an_absolute_threshold():
    from models.avdit.router import masks_from_attention, uniform_shares

    f, h, w = 4, 8, 8
    truth = torch.zeros(f, h, w, dtype=torch.long)
    truth[:, 1:7, 0:3] = 1
    truth[:, 2:8, 5:8] = 2
    baseline = torch.tensor([2 / 20, 1 / 20])  # 2 and 1 trigger tokens in a 20-token prompt
    assert torch.allclose(uniform_shares([[3, 4], [9]], 20), baseline)
    g = torch.Generator().manual_seed(0)
    shares = baseline.view(2, 1, 1, 1) * (0.8 + 0.4 * torch.rand(2, f, h, w, generator=g))  # diffuse everywhere
    shares[0][truth == 1] = 0.5  # 5x its uniform share
    shares[1][truth == 2] = 0.2  # 4x its uniform share: weaker in absolute terms, but clear
    got = masks_from_attention(shares, baseline, spatial=0, temporal=0)
    assert torch.equal(got, truth)
    diffuse = baseline.view(2, 1, 1, 1) * (0.8 + 0.4 * torch.rand(2, f, h, w, generator=g))
    assert int(masks_from_attention(diffuse, baseline).count_nonzero()) == 0, "diffuse attention must not become a mask"
    one_diffuse = shares.clone()
    one_diffuse[0] = diffuse[0]
    got = masks_from_attention(one_diffuse, baseline, spatial=0, temporal=0)
    assert not (got == 1).any() and torch.equal(got == 2, truth == 2)
    # Smoothing is a 3x3x3 mean: an isolated spike of 27x the threshold survives only at its token.
    spike = torch.zeros(1, 3, 5, 5)
    spike[0, 1, 2, 2] = 27 * 2.0 * 0.1
    got = masks_from_attention(spike, torch.tensor([0.1]))
    assert int(got.count_nonzero()) == 27 and int(got[1, 2, 2]) == 1


def test_trigger_attention_excludes_padding(inputs):
    i = inputs
    model = tiny_model(seed=0)
    attn = model.transformer.blocks[0].attn2
    hidden = torch.randn(1, 48, 24)
    context = model.transformer.condition_embedder.text_embedder(i["embeds"])
    with torch.no_grad():
        real = trigger_attention(attn, hidden, context, i["lens"], i["groups"])
        all_real = trigger_attention(attn, hidden, context, i["lens"], [list(range(int(i["lens"])))])
        # Independent: explicit per-head softmax over the real tokens only, averaged over heads.
        q = attn.norm_q(attn.to_q(hidden)).view(1, 48, 2, 12).transpose(1, 2)
        k = attn.norm_k(attn.to_k(context[:, : int(i["lens"])])).view(1, -1, 2, 12).transpose(1, 2)
        probs = torch.softmax(q @ k.transpose(-1, -2) / 12 ** 0.5, -1).mean(1)
    assert torch.allclose(all_real, torch.ones_like(all_real), atol=1e-5)
    for s, idx in enumerate(i["groups"]):
        assert torch.allclose(real[0, s], probs[0, :, idx].sum(-1), atol=1e-5)


def test_token_groups_one_character_per_token():
    offsets = TinyPrompt()([PROMPT])[2][0]
    spans = [word_spans(PROMPT, ["<sub1>", "collins"]), word_spans(PROMPT, ["<sub2>", "hopper"])]
    assert token_groups(offsets, spans) == [[0, 1], [4, 5]]
    shared = [word_spans(PROMPT, ["collins", "talks"]), word_spans(PROMPT, ["talks"])]
    assert token_groups(offsets, shared) == [[1], []]


def test_box_labels_and_video_upsampling():
    labels = box_labels(torch.tensor([[0.0, 0.0, 0.5, 1.0], [0.5, 0.5, 1.0, 1.0]]), (2, 4, 4))
    assert labels[0, 0].tolist() == [1, 1, 0, 0] and labels[0, 3].tolist() == [1, 1, 2, 2]
    over = box_labels(torch.tensor([[0.0, 0.0, 0.75, 1.0], [0.25, 0.0, 1.0, 1.0]]), (1, 1, 4))
    assert over[0, 0].tolist() == [1, 1, 2, 2]  # overlap: the nearer centre wins
    video = labels_to_video(labels, 5, 16, 16)
    assert video.shape == (5, 16, 16) and video.dtype == torch.uint8
    assert int(video[0, 15, 15]) == 2 and int(video[0, 0, 15]) == 0
    moving = torch.zeros(2, 1, 1, dtype=torch.long)
    moving[1] = 1
    assert labels_to_video(moving, 5, 1, 1).flatten().tolist() == [0, 1, 1, 1, 1]  # video frame 1..4 -> latent 1


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


def test_audio_encoder_uses_exactly_the_clips_audio():
    model = tiny_model(seed=0)
    enc = model.audio_encoder
    g = torch.Generator().manual_seed(4)
    want = 16000 * 9 // 25  # 9 frames at 25 fps
    wav = torch.randn(1, want + 3000, generator=g)
    with torch.no_grad():
        longer = enc(wav, 9, 25.0)
        exact = enc(wav[:, :want], 9, 25.0)
        short = enc(wav[:, : want - 1000], 9, 25.0)
        padded = enc(torch.cat([wav[:, : want - 1000], torch.zeros(1, 1000)], 1), 9, 25.0)
    assert torch.equal(longer, exact), "audio after the clip's end must be ignored"
    assert torch.allclose(short, padded, atol=1e-6), "short audio is zero-padded to the clip"
    assert longer.shape == (1, 3, enc.tokens, enc.dim)


def test_word_spans_skip_empty_words():
    assert word_spans(PROMPT, ["", "hopper"]) == [(31, 37)]


def test_trigger_attention_reads_only_the_text_part_of_an_i2v_context():
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    tr = WanTransformer3DModel(  # Wan I2V at toy size: image tokens precede the text in the context
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=4, text_dim=32,
        freq_dim=32, ffn_dim=32, num_layers=1, cross_attn_norm=True, image_dim=16, added_kv_proj_dim=24)
    attn = tr.blocks[0].attn2
    assert attn.add_k_proj is not None
    embeds, lens, _ = TinyPrompt()([PROMPT])
    text = tr.condition_embedder.text_embedder(embeds)
    image = torch.randn(1, 257, 24)
    hidden = torch.randn(1, 48, 24)
    with torch.no_grad():
        both = trigger_attention(attn, hidden, torch.cat([image, text], 1), lens, [[0, 1], [4, 5]])
        alone = trigger_attention(attn, hidden, text, lens, [[0, 1], [4, 5]])
    assert torch.allclose(both, alone, atol=1e-6)
