"""The learned router (Bind-Your-Avatar) at tiny size: predict mode routes by the first block's
confident labels, teacher forcing detaches the head, the losses carry the paper's weights, and the
pipeline reaches all of it. Expected values are computed independently in the tests."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.avdit.guidance import Guidance, guided_noise
from models.avdit.router import (
    ROUTER_LOSS_WEIGHTS,
    box_labels,
    confident_labels,
    labels_to_route,
    router_losses,
    teacher_route,
)
from models.avdit.tiny import TinyPrompt, tiny_model
from models.errors import ModelError

PROMPT = "<sub1> COLLINS talks to <sub2> HOPPER at dusk"
GROUPS = [[0, 1], [4, 5]]
HALVES = torch.tensor([[0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 1.0]])


def routed_model(seed=0):
    model = tiny_model(seed=seed, router=True)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for layer in model.audio_layers:
            layer.to_out.weight.copy_(torch.randn(layer.to_out.weight.shape, generator=g) * 0.5)
            layer.to_out.bias.copy_(torch.randn(layer.to_out.bias.shape, generator=g))
        for p in model.router.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 2)
    return model


def inputs(model):
    g = torch.Generator().manual_seed(1)
    embeds, lens, _ = TinyPrompt()([PROMPT])
    neg, neg_lens, _ = TinyPrompt()([""])
    audio = model.audio_encoder(torch.randn(2, 16000 * 9 // 25, generator=g), 9, 25.0)[None]
    return torch.randn(1, 4, 3, 8, 8, generator=g), torch.tensor([600.0]), embeds, lens, neg, neg_lens, audio


def capture(model):
    """Hooks recording each audio layer's (hidden, route) and the text context of block 0."""
    seen = {"route": {}, "hidden": {}}
    hooks = [model.transformer.blocks[0].attn2.register_forward_pre_hook(
        lambda m, a, k: seen.__setitem__("ctx", k.get("encoder_hidden_states", a[1] if len(a) > 1 else None)), with_kwargs=True)]
    for i, layer in enumerate(model.audio_layers):
        def hook(m, a, o, i=i):
            seen["hidden"][i], seen["route"][i] = a[0], a[2]
        hooks.append(layer.register_forward_hook(hook))
    return seen, hooks


def test_predict_mode_routes_every_block_and_row_by_first_block_confident_labels():
    model = routed_model()
    latents, t, embeds, lens, neg, neg_lens, audio = inputs(model)
    guide = Guidance("global", 5.0, 9.0)
    seen, hooks = capture(model)
    try:
        with torch.no_grad():
            h0 = None
            # First pass only to read block 0's hidden state and pick a threshold that discards some tokens.
            guided_noise(model, latents, t, embeds, neg, guide, audio, None, None, lens, neg_lens, GROUPS, router_mode="predict")
            h0, ctx = seen["hidden"][0], seen["ctx"]
            classes = torch.stack([ctx[:, idx].mean(1) for idx in GROUPS], 1)
            probs = model.router(h0, classes).softmax(-1)
            conf = probs.amax(-1)
            threshold = float(conf[guide.conditional_row].median())
            guided_noise(model, latents, t, embeds, neg, guide, audio, None, None, lens, neg_lens, GROUPS,
                         router_mode="predict", router_threshold=threshold)
    finally:
        for h in hooks:
            h.remove()
    row = guide.conditional_row
    label = probs[row].argmax(-1)
    label[conf[row] < threshold] = 0
    assert 0 < int((label == 0).sum()) < label.numel() and (label > 0).any()
    want = torch.stack([(label == k).float() for k in (1, 2)])[None].expand(3, -1, -1)
    for i in range(model.num_layers):
        assert torch.equal(seen["route"][i].float(), want), f"block {i} did not use block 0's confident labels"
    assert torch.equal(model.state.router_labels, label[None].expand(3, -1))
    assert len(model.state.router_logits) == 1  # predicted once, on the first block


def test_teacher_forcing_uses_given_route_and_detaches_the_head():
    model = routed_model()
    latents, t, embeds, lens, _, _, audio = inputs(model)
    route = labels_to_route(box_labels(HALVES, (3, 4, 4)), 2)[None]
    seen, hooks = capture(model)
    try:
        pred = model(latents, t, embeds, audio=audio, route=route, text_lens=lens, token_groups=GROUPS, router_mode="teacher")
    finally:
        for h in hooks:
            h.remove()
    assert all(torch.equal(seen["route"][i], route) for i in range(model.num_layers))
    assert len(model.state.router_logits) == model.num_layers  # every block trains the head
    target = box_labels(HALVES, (3, 4, 4)).flatten()[None]
    r = router_losses(model.state.router_logits, target, model.state.grid)
    r["total"].backward(retain_graph=True)
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.router.parameters())
    for p in list(model.audio_layers.parameters()) + list(model.audio_encoder.parameters()):
        assert p.grad is None or float(p.grad.abs().sum()) == 0, "router loss reached the audio path"
    model.zero_grad(set_to_none=True)
    pred.square().mean().backward()
    assert all(p.grad is None for p in model.router.parameters()), "the forced route must not depend on the head"


def test_router_losses_carry_the_papers_weights():
    assert ROUTER_LOSS_WEIGHTS == {"ce": 1.0, "tv": 0.001, "layer_var": 8.0}  # Bind-Your-Avatar Sec. 5.2.1
    g = torch.Generator().manual_seed(0)
    grid = (2, 3, 3)
    logits = [torch.randn(1, 18, 3, generator=g) for _ in range(2)]
    target = torch.randint(0, 3, (1, 18), generator=g)
    got = router_losses(logits, target, grid)
    ce = torch.stack([-F.log_softmax(l[0], -1)[torch.arange(18), target[0]].mean() for l in logits]).mean()
    p = torch.stack([l[0].softmax(-1).view(*grid, 3) for l in logits])  # (L, F, H, W, C)
    tv = sum((p.narrow(d, 1, p.shape[d] - 1) - p.narrow(d, 0, p.shape[d] - 1)).abs().mean() for d in (1, 2, 3))
    var = ((p[0] - p[1]) / 2).square().mean()
    assert torch.allclose(got["ce"], ce, atol=1e-5) and torch.allclose(got["tv"], tv, atol=1e-6)
    assert torch.allclose(got["layer_var"], var, atol=1e-6)
    assert torch.allclose(got["total"], ce + 0.001 * tv + 8.0 * var, atol=1e-5)


def test_confident_labels_discard_low_confidence_tokens():
    logits = torch.log(torch.tensor([[[0.1, 0.8, 0.1], [0.2, 0.45, 0.35], [0.6, 0.1, 0.3], [0.05, 0.05, 0.9]]]))
    assert confident_labels(logits, 0.5).tolist() == [[1, 0, 0, 2]]
    assert confident_labels(logits, 0.0).tolist() == [[1, 1, 0, 2]]


def test_teacher_route_is_dropped_and_noised_ground_truth():
    route = torch.zeros(1, 2, 4000)
    route[:, 0, :2000] = 1
    got = teacher_route(route, torch.Generator().manual_seed(0), drop=0.1, sigma=0.1)
    assert got.min() >= 0 and got.max() <= 1
    ones, zeros = got[route == 1], got[route == 0]
    assert 0.06 < float((ones < 0.5).float().mean()) < 0.14  # about 10% dropped
    assert 0.05 < float(ones[ones > 0.5].std()) < 0.1 and 0.02 < float(zeros.mean()) < 0.06  # clamped N(0, 0.1)


def pipeline(model=None):
    from diffusers import FlowMatchEulerDiscreteScheduler

    from models.avdit.pipeline import AvditPipeline
    from models.avdit.tiny import tiny_vae

    return AvditPipeline(model or tiny_model(seed=0), tiny_vae(), FlowMatchEulerDiscreteScheduler(shift=3.0), TinyPrompt())


def generate(pipe, **kw):
    embeds, lens, _ = pipe.prompt_encoder([PROMPT, ""])
    g = torch.Generator().manual_seed(3)
    args = dict(text_lens=lens[:1], negative_lens=lens[1:], token_groups=GROUPS, steps=2, output_type="latent",
                generator=torch.Generator().manual_seed(0))
    args.update(kw)
    return pipe(embeds[:1], embeds[1:], torch.randn(2, 16000 * 9 // 25, generator=g), HALVES, 9, 32, 32, **args)


def test_pipeline_router_predict_changes_output_and_labels():
    pipe = pipeline(routed_model())
    boxes = generate(pipe, mask_source="boxes")
    routed = generate(pipe, mask_source="router", router_threshold=0.0)
    assert abs(routed.video - boxes.video).max() > 1e-4
    assert torch.equal(routed.labels.flatten(), pipe.model.state.router_labels[2].cpu())  # the router's own labels
    assert not torch.equal(routed.labels, boxes.labels)


def test_pipeline_attention_masks_fall_back_to_boxes_on_diffuse_attention():
    pipe = pipeline()
    out = generate(pipe, mask_source="attention")
    assert pipe.model.captured_maps() is not None  # the attention path ran
    # Random tiny weights attend diffusely: no token passes the threshold, so each character keeps its box.
    assert torch.equal(out.labels, box_labels(HALVES, out.labels.shape))


def test_pipeline_refuses_settings_it_cannot_honour():
    pipe = pipeline()
    with pytest.raises(ModelError, match="router head"):
        generate(pipe, mask_source="router")
    with pytest.raises(ModelError, match="identity guidance"):
        generate(pipe, guidance=Guidance("region", id_scale=4.0), characters=["collins", "hopper"])
    with pytest.raises(ModelError, match="mask_source"):
        generate(pipe, mask_source="faces")
    with pytest.raises(ModelError, match="trigger tokens"):
        generate(pipeline(routed_model()), mask_source="router", token_groups=None)
    with pytest.raises(ModelError, match="character names"):
        generate(pipe, characters=["collins"])


def test_pipeline_decodes_like_wan():
    pipe = pipeline()
    out = generate(pipe, mask_source="boxes", output_type="np")
    assert out.video.shape == (9, 32, 32, 3) and out.video.dtype.name == "uint8" and out.video.std() > 0
    z = torch.randn(1, 4, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        frames = pipe.vae.decode(z, return_dict=False)[0][0]  # tiny VAE: latents_mean 0, latents_std 1
    want = ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()
    assert (pipe.decode(z) == want).all()
