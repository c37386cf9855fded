"""MultiTalk/InfiniteTalk weights on our audio layers, at tiny size on CPU. Each property is checked
against a computation written out here from the published facts (the release's raw tensors,
explicit loops, complex-number rotations), not against the code's own helpers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.avdit.guidance import Guidance, guided_noise
from models.avdit.i2v import Streaming
from models.avdit.multitalk import (
    RELEASE_14B,
    expected_shapes,
    latent_window_tables,
    load_release_adapter,
    loudness_normalise,
    lrope_positions,
    model_sizes,
)
from models.avdit.tiny import TinyPrompt, tiny_clip_vision, tiny_release_model, tiny_release_pipeline
from models.errors import ModelError
from tests.fixtures.release import release_state_dict

GRID = (2, 4, 4)  # 2 latent frames (5 video frames) of 4x4 tokens


@pytest.fixture(scope="module")
def loaded():
    model = tiny_release_model(seed=0)
    sd = release_state_dict(seed=1, **model_sizes(model))
    load_release_adapter(model, sd)
    return model, sd


def test_published_14b_key_names_and_shapes():
    """The 14B adapter's keys and shapes as the issue and the release's source state them."""
    shapes = expected_shapes(**RELEASE_14B)
    assert len(shapes) == 40 * 8 + 10
    assert shapes["blocks.0.norm_x.weight"] == (5120,)
    assert shapes["blocks.39.audio_cross_attn.q_linear.weight"] == (5120, 5120)
    assert shapes["blocks.39.audio_cross_attn.kv_linear.weight"] == (10240, 768)
    assert shapes["blocks.39.audio_cross_attn.kv_linear.bias"] == (10240,)
    assert shapes["blocks.7.audio_cross_attn.proj.weight"] == (5120, 5120)
    assert shapes["audio_proj.proj1.weight"] == (512, 5 * 12 * 768)
    assert shapes["audio_proj.proj1_vf.weight"] == (512, 8 * 12 * 768)
    assert shapes["audio_proj.proj2.weight"] == (512, 512)
    assert shapes["audio_proj.proj3.weight"] == (32 * 768, 512)
    assert shapes["audio_proj.norm.weight"] == shapes["audio_proj.norm.bias"] == (768,)
    assert not any("norm_q" in k or "k_norm" in k for k in shapes)  # no q/k norm


def test_synthetic_checkpoint_fills_every_audio_parameter(loaded):
    model, sd = loaded
    dim = model.dim
    own = model.state_dict()
    want = {}
    for i in range(model.num_layers):
        b, a = f"blocks.{i}.", f"audio_layers.{i}."
        kv_w, kv_b = sd[b + "audio_cross_attn.kv_linear.weight"], sd[b + "audio_cross_attn.kv_linear.bias"]
        want.update({a + "norm.weight": sd[b + "norm_x.weight"], a + "norm.bias": sd[b + "norm_x.bias"],
                     a + "to_q.weight": sd[b + "audio_cross_attn.q_linear.weight"],
                     a + "to_q.bias": sd[b + "audio_cross_attn.q_linear.bias"],
                     a + "to_k.weight": kv_w[:dim], a + "to_k.bias": kv_b[:dim],
                     a + "to_v.weight": kv_w[dim:], a + "to_v.bias": kv_b[dim:],
                     a + "to_out.weight": sd[b + "audio_cross_attn.proj.weight"],
                     a + "to_out.bias": sd[b + "audio_cross_attn.proj.bias"]})
    for name in ("proj1", "proj1_vf", "proj2", "proj3", "norm"):
        for kind in ("weight", "bias"):
            want[f"audio_encoder.proj.{name}.{kind}"] = sd[f"audio_proj.{name}.{kind}"]
    audio_params = {k for k in own if k.startswith(("audio_layers.", "audio_encoder.proj."))}
    assert audio_params == set(want)  # no audio parameter left at its initial value
    for k, v in want.items():
        assert torch.equal(own[k], v), k


def test_kv_rows_split_as_the_release_views_them(loaded):
    """The release computes kv_linear(a).view(B, N, 2, heads, head_dim): index 0 is K, 1 is V."""
    model, sd = loaded
    layer = model.audio_layers[1]
    a = torch.randn(5, model.audio_encoder.dim)
    kv = a @ sd["blocks.1.audio_cross_attn.kv_linear.weight"].T + sd["blocks.1.audio_cross_attn.kv_linear.bias"]
    k, v = kv.view(5, 2, layer.heads, -1).unbind(1)
    torch.testing.assert_close(layer.to_k(a), k.reshape(5, -1))
    torch.testing.assert_close(layer.to_v(a), v.reshape(5, -1))


@pytest.mark.parametrize("change", ["missing", "extra", "shape"])
def test_loader_names_missing_extra_and_misshaped_keys(change):
    model = tiny_release_model(seed=0)
    sd = release_state_dict(**model_sizes(model))
    load_release_adapter(model, dict(sd))  # negative control: the intact file loads
    key = "blocks.1.audio_cross_attn.kv_linear.weight"
    if change == "missing":
        del sd[key]
    elif change == "extra":
        key = "blocks.1.audio_cross_attn.k_norm.weight"
        sd[key] = torch.ones(3)
    else:
        key = "audio_proj.proj1.weight"
        sd[key] = sd[key][:, :-1]
    with pytest.raises(ModelError, match=key.replace(".", r"\.")):
        load_release_adapter(model, sd)


def published_window(c: int, n: int) -> list[int]:
    return [min(max(c + o, 0), n - 1) for o in (-2, -1, 0, 1, 2)]


@pytest.mark.parametrize("frames,start,total", [(9, 0, None), (17, 0, None), (13, 8, 30)])
def test_window_tables_follow_the_published_rule(frames, start, total):
    n = total or frames
    first, later = latent_window_tables(frames, start, total)
    assert first.tolist() == [published_window(start, n)]
    want = []
    for g in range(1, (frames - 1) // 4 + 1):
        c = start + 4 * g - 3
        want.append(published_window(c, n)[:3] + [published_window(c + 1, n)[2], published_window(c + 2, n)[2]]
                    + published_window(c + 3, n)[2:])
    assert later.tolist() == want and later.shape[1] == 8


def test_audio_proj_equals_the_release_computation(loaded):
    """Tokens of a clip from frame 4 of a 13-frame shot, from the raw `audio_proj` tensors: frame 0's
    5-frame window through proj1, each later 8-frame window through proj1_vf, ReLU, proj2, ReLU,
    proj3, LayerNorm over each of the K tokens."""
    model, sd = loaded
    enc = model.audio_encoder
    hs = torch.randn(2, 13, enc.blocks, enc.channels)
    got = enc.from_features(hs, 4, 9)

    def lin(name, x):
        return x @ sd[f"audio_proj.{name}.weight"].T + sd[f"audio_proj.{name}.bias"]

    for s in range(2):
        for g in range(3):
            if g == 0:
                h = torch.relu(lin("proj1", hs[s, published_window(4, 13)].flatten()))
            else:
                c = 4 + 4 * g - 3
                idx = published_window(c, 13)[:3] + [c + 1, c + 2] + published_window(c + 3, 13)[2:]
                h = torch.relu(lin("proj1_vf", hs[s, idx].flatten()))
            tok = lin("proj3", torch.relu(lin("proj2", h))).view(enc.proj.tokens, enc.dim)
            want = F.layer_norm(tok, (enc.dim,), sd["audio_proj.norm.weight"], sd["audio_proj.norm.bias"], 1e-5)
            torch.testing.assert_close(got[s, g], want, rtol=1e-4, atol=1e-4)


def release_attention(sd, i, heads, hidden, tokens, q_rot=None, k_rot=None):
    """The release's audio cross-attention for one frame, from the raw tensors: fp32 LayerNorm,
    q_linear, kv_linear viewed (N, 2, heads, hd), optional rotations, softmax per head, proj."""
    b = f"blocks.{i}."
    x = F.layer_norm(hidden.float(), hidden.shape[-1:], sd[b + "norm_x.weight"], sd[b + "norm_x.bias"], 1e-6)
    q = x @ sd[b + "audio_cross_attn.q_linear.weight"].T + sd[b + "audio_cross_attn.q_linear.bias"]
    kv = tokens @ sd[b + "audio_cross_attn.kv_linear.weight"].T + sd[b + "audio_cross_attn.kv_linear.bias"]
    k, v = kv.view(len(tokens), 2, heads, -1).unbind(1)
    q = q.view(len(hidden), heads, -1)
    if q_rot is not None:
        q, k = q_rot(q), k_rot(k)
    out = torch.stack([torch.softmax(q[:, h] @ k[:, h].T / q.shape[-1] ** 0.5, -1) @ v[:, h] for h in range(heads)], 1)
    return out.reshape(len(hidden), -1) @ sd[b + "audio_cross_attn.proj.weight"].T + sd[b + "audio_cross_attn.proj.bias"]


def test_single_person_attention_equals_the_release_computation(loaded):
    model, sd = loaded
    layer = model.audio_layers[0]
    f, hh, ww = GRID
    hidden = torch.randn(1, f * hh * ww, model.dim)
    audio = torch.randn(1, 1, f, 4, model.audio_encoder.dim)
    got = layer(hidden, audio, None, GRID)[0]
    for fr in range(f):
        rows = slice(fr * hh * ww, (fr + 1) * hh * ww)
        want = release_attention(sd, 0, layer.heads, hidden[0, rows], audio[0, 0, fr])
        torch.testing.assert_close(got[rows], want, rtol=1e-4, atol=1e-5)


def rotate(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """1-D RoPE as complex multiplication: pair (x[2j], x[2j+1]) times exp(i pos 10000^(-2j/hd))."""
    hd = x.shape[-1]
    theta = 10000.0 ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], hd // 2, 2).contiguous())
    rot = torch.polar(torch.ones_like(theta), pos.double().view(-1, *[1] * (x.dim() - 2), 1) * theta)
    return torch.view_as_real(z * rot).reshape(x.shape).float()


def test_lrope_positions_from_router_labels():
    labels = torch.zeros(GRID, dtype=torch.long)
    labels[:, :, :2], labels[:, :3, 2:] = 1, 2  # the bottom-right corner is background
    pos, keys = lrope_positions(labels, tokens=4)
    flat = labels.flatten()
    one, two = pos[flat == 1], pos[flat == 2]
    assert one.min() == 0.0 and abs(one.max() - 4.0) < 1e-5  # person 1 scaled into [0, 4]
    assert two.min() == 20.0 and abs(two.max() - 24.0) < 1e-5  # person 2 into [20, 24]
    assert (pos[flat == 0] == 12.0).all()  # background
    assert keys.tolist() == [2.0] * 4 + [22.0] * 4  # audio keys at the middle of each range
    # negative control: one speaker's region alone gives no person-2 positions
    alone, _ = lrope_positions((labels == 1).long(), tokens=4)
    assert not ((alone >= 20) & (alone <= 24)).any()


def test_two_person_lrope_attention_equals_the_release_computation(loaded):
    model, sd = loaded
    layer = model.audio_layers[1]
    f, hh, ww = GRID
    labels = torch.zeros(GRID, dtype=torch.long)
    labels[:, :, :2], labels[:, :, 2:] = 1, 2
    qpos, kpos = lrope_positions(labels, tokens=4)
    hidden = torch.randn(1, f * hh * ww, model.dim)
    audio = torch.randn(1, 2, f, 4, model.audio_encoder.dim)
    got = layer(hidden, audio, None, GRID, positions=(qpos[None], kpos[None]))[0]
    for fr in range(f):
        rows = slice(fr * hh * ww, (fr + 1) * hh * ww)
        tokens = torch.cat([audio[0, 0, fr], audio[0, 1, fr]])  # person 1's tokens, then person 2's
        want = release_attention(sd, 1, layer.heads, hidden[0, rows], tokens,
                                 lambda q: rotate(q, qpos[rows]), lambda k: rotate(k, kpos))
        torch.testing.assert_close(got[rows], want, rtol=1e-4, atol=1e-4)
    # The null-audio rows: equal streams at position 0 are the release's one unbound null person.
    null = audio[:, :1].expand(-1, 2, -1, -1, -1)
    zero = (torch.zeros_like(qpos)[None], torch.zeros_like(kpos)[None])
    torch.testing.assert_close(layer(hidden, null, None, GRID, positions=zero), layer(hidden, audio[:, :1], None, GRID),
                               rtol=1e-4, atol=1e-5)


def i2v_inputs(model, frames=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = model.transformer.config.out_channels
    lat = torch.randn(1, 2 * z + 4, (frames - 1) // 4 + 1, 8, 8, generator=g)
    image = tiny_clip_vision()(torch.randn(1, 3, 32, 32, generator=g), output_hidden_states=True).hidden_states[-2]
    return lat, image.detach()


def test_multitalk_guidance_formula_in_one_batched_forward(loaded):
    model, _ = loaded
    g = Guidance("multitalk", text_scale=3.0, audio_scale=2.0)
    full, no_text, null = (torch.randn(2, 3) for _ in range(3))
    torch.testing.assert_close(g.combine([full, no_text, null]),
                               null + 3.0 * (full - no_text) + 2.0 * (no_text - null))
    distilled = Guidance("multitalk", text_scale=1.0, audio_scale=2.0)  # the release's 2-pass form at s_t 1
    assert distilled.passes == 2 and not any(r.negative for r in distilled.rows())
    torch.testing.assert_close(distilled.combine([full, null]), null + 2.0 * (full - null))
    lat, image = i2v_inputs(model)
    embeds, _, _ = TinyPrompt()(["<sub1> talks", ""])
    pos_embeds, neg_embeds = embeds[:1], embeds[1:]
    enc = model.audio_encoder
    audio = enc(torch.randn(2, 3200), 5, 25.0)[None]
    null_audio = enc.null_tokens(2, 5)[None]
    labels = torch.zeros(2, 4, 4, dtype=torch.long)
    labels[:, :, :2], labels[:, :, 2:] = 1, 2
    qpos, kpos = lrope_positions(labels, enc.proj.tokens)
    t = torch.tensor([600.0])
    with torch.no_grad():
        batched = guided_noise(model, lat, t, pos_embeds, neg_embeds, g, audio, null_audio=null_audio,
                               positions=(qpos[None], kpos[None]), image_embeds=image)
        bound = (qpos[None], kpos[None])
        e_full = model(lat, t, pos_embeds, audio=audio, positions=bound, image_embeds=image)
        e_no_text = model(lat, t, neg_embeds, audio=audio, positions=bound, image_embeds=image)
        e_null = model(lat, t, neg_embeds, audio=null_audio[:, :1], image_embeds=image)  # one unbound null person
    want = e_null + 3.0 * (e_full - e_no_text) + 2.0 * (e_no_text - e_null)
    torch.testing.assert_close(batched, want, rtol=1e-4, atol=1e-4)
    assert (e_null - e_no_text).abs().max() > 1e-4  # the null audio is not the audio


def test_three_speaker_route_isolation_is_bit_exact():
    """One block (no later self-attention to spread it): changing one stream's audio changes the
    prediction on that character's tokens only, bit for bit; overlapping speech of two streams at
    once reaches each one's own tokens; a bystander's tokens get nothing."""
    model = tiny_release_model(seed=0, layers=1)
    load_release_adapter(model, release_state_dict(seed=2, **model_sizes(model)))
    pipe = tiny_release_pipeline()
    pipe.model = model
    lat, image = i2v_inputs(model)
    embeds, _, _ = TinyPrompt()(["three people"])
    labels = torch.zeros(2, 4, 4, dtype=torch.long)
    labels[:, :, 0], labels[:, :, 1], labels[:, :, 2] = 1, 2, 3  # column 3: background
    speaking = torch.tensor([True, True, False])  # A and B overlap; C is a bystander
    route, positions = pipe.binding(labels, speaking, model.audio_encoder.proj.tokens)
    assert positions is None
    audio = torch.randn(1, 3, 2, 4, model.audio_encoder.dim)
    t = torch.tensor([500.0])

    def run(a, r=route):
        with torch.no_grad():
            return model(lat, t, embeds, audio=a, route=r, image_embeds=image)

    base = run(audio)
    token_of_pixel = labels.repeat_interleave(2, 1).repeat_interleave(2, 2)[None, None].expand_as(base)
    for who in (1, 2):
        changed = audio.clone()
        changed[:, who - 1] = torch.randn_like(changed[:, who - 1])
        diff = run(changed) != base
        assert not diff[token_of_pixel != who].any()
        assert diff[token_of_pixel == who].any()
    bystander = audio.clone()
    bystander[:, 2] = torch.randn_like(bystander[:, 2])
    assert torch.equal(run(bystander), base)
    # negative control: without route masks every stream reaches every token
    changed = audio.clone()
    changed[:, 1] = torch.randn_like(changed[:, 1])
    assert (run(changed, None) != run(audio, None))[token_of_pixel != 2].any()


def test_features_loudness_and_frame_rate_before_the_transformer():
    import pyloudnorm

    sr = 16000
    t = np.arange(sr * 2) / sr
    quiet = 0.01 * np.sin(2 * np.pi * 220 * t)
    assert abs(pyloudnorm.Meter(sr).integrated_loudness(loudness_normalise(quiet)) + 23.0) < 0.1
    assert np.array_equal(loudness_normalise(np.zeros(sr)), np.zeros(sr))  # silence stays silent
    model = tiny_release_model(seed=0)
    enc = model.audio_encoder
    wav = torch.from_numpy(np.sin(2 * np.pi * 3 * t[:3200]) * np.random.default_rng(0).normal(size=3200)).float()
    hs = enc.hidden_states(wav[None], 5, 25.0)
    assert hs.shape == (1, 5, enc.wav2vec.config.num_hidden_layers, enc.wav2vec.config.hidden_size)
    # The last layer, recomputed: normalise, CNN, resample to 5 frames, then projection and encoder.
    w = loudness_normalise(wav.double().numpy())
    x = torch.from_numpy((w - w.mean()) / np.sqrt(w.var() + 1e-7)).float()[None]
    w2v = enc.wav2vec
    with torch.no_grad():
        feats = F.interpolate(w2v.feature_extractor(x), size=5, mode="linear", align_corners=True).transpose(1, 2)
        last = w2v.encoder(w2v.feature_projection(feats)[0]).last_hidden_state
    torch.testing.assert_close(hs[:, :, -1], last, rtol=1e-4, atol=1e-5)


def test_streaming_windows_and_motion_frames():
    assert Streaming(9, 5).starts(17) == [0, 4, 8]  # 9 + 4 + 4 new frames
    shot = np.arange(17)
    windows = [shot[s:s + 9] for s in (0, 4, 8)]
    assert Streaming(9, 5).stitch(windows, 17).tolist() == list(range(17))  # overlaps dropped, not repeated
    assert Streaming(81, 9).starts(81) == [0]
    for bad in ((80, 9), (81, 8), (9, 9)):
        with pytest.raises(ModelError):
            Streaming(*bad)
    pipe = tiny_release_pipeline()
    model = pipe.model
    lat, image = i2v_inputs(model, frames=9)
    cond = lat[:, model.transformer.config.out_channels:]
    motion = torch.randn(1, model.transformer.config.out_channels, 2, 8, 8)
    embeds, _, _ = TinyPrompt()(["a", ""])
    tokens = model.audio_encoder(torch.randn(1, 16000 * 9 // 25), 9, 25.0)[None]
    out = pipe.denoise(cond, tokens, model.audio_encoder.null_tokens(1, 9)[None], None, None, image, embeds[:1],
                       embeds[1:], 2, Guidance("multitalk", 5.0, 4.0), motion, torch.Generator().manual_seed(0))
    assert torch.equal(out[:, :, :2], motion) and not torch.equal(out[:, :, 2:], torch.zeros_like(out[:, :, 2:]))
    frame = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    labels = torch.zeros(4, 4, dtype=torch.long)
    labels[:, :2] = 1
    video = pipe(embeds[:1], embeds[1:], torch.randn(1, 16000), frame, labels, 17, steps=1, streaming=Streaming(9, 5),
                 generator=torch.Generator().manual_seed(0)).video
    assert video.shape == (17, 64, 64, 3)


def test_i2v_condition_is_mask_plus_first_frame_latents():
    """4 mask channels (1 on latent frame 0, the known first frame; 0 after) then the VAE latents of
    the first frame followed by black frames, as diffusers' image-to-video pipeline builds them."""
    pipe = tiny_release_pipeline()
    first = torch.rand(1, 3, 64, 64) * 2 - 1
    cond = pipe.condition(first, 9)
    assert cond.shape == (1, 4 + 4, 3, 8, 8)
    assert (cond[:, :4, 0] == 1).all() and (cond[:, :4, 1:] == 0).all()
    video = torch.cat([first[:, :, None], torch.zeros(1, 3, 8, 64, 64)], 2)
    with torch.no_grad():
        want = pipe.vae.encode(video).latent_dist.mode()  # the tiny VAE's latents_mean 0, latents_std 1
    torch.testing.assert_close(cond[:, 4:], want)


def test_token_labels_sample_each_token_centre():
    from tools.video.avdit import token_labels

    mask = np.zeros((48, 64), np.uint8)
    mask[:, 10:30], mask[20:, 40:] = 1, 2
    got = token_labels(mask, 4, 3)
    for ty in range(3):
        for tx in range(4):
            assert got[ty, tx] == mask[ty * 16 + 8, tx * 16 + 8]
    assert set(got.flatten().tolist()) == {0, 1, 2}
