"""The avdit model on a real GPU: a Wan2.1-1.3B-sized transformer (random weights) runs a batched
region-selective audio CFG step in bf16, and the zero-initialised audio layers leave it equal to
the base model. Skipped without CUDA."""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.gpu

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)


def test_wan_1_3b_region_cfg_step_on_gpu():
    from models.avdit.adapter import TEXT_CONTEXT
    from models.avdit.guidance import Guidance, guided_noise
    from models.avdit.presets import PRESETS, build
    from models.avdit.router import box_labels, labels_to_route

    cfg = dict(PRESETS["wan2.1-1.3b"], frames=21, height=240, width=416)  # smaller clip, full-size model
    model = build(cfg, "cuda", torch.bfloat16)
    lat = torch.randn(1, 16, 6, 30, 52, device="cuda", dtype=torch.bfloat16)
    grid = model.token_grid(lat)
    labels = box_labels(torch.tensor([[0.0, 0.1, 0.5, 1.0], [0.5, 0.1, 1.0, 1.0]]), grid)
    route = labels_to_route(labels, 2)[None].cuda().to(torch.bfloat16)
    text = torch.randn(1, TEXT_CONTEXT, 4096, device="cuda", dtype=torch.bfloat16)
    audio = torch.randn(1, 2, grid[0], 4, 1536, device="cuda", dtype=torch.bfloat16)
    t = torch.tensor([500.0], device="cuda")
    with torch.no_grad():
        base = model.transformer(lat, t, text, return_dict=False)[0]
        with_audio = model(lat, t, text, audio=audio, route=route)
        mask = (labels > 0).float().repeat_interleave(2, 1).repeat_interleave(2, 2)[None, None].cuda()
        eps = guided_noise(model, lat, t, text, torch.zeros_like(text), Guidance("region"), audio, route, mask)
    assert torch.equal(base, with_audio)
    assert eps.shape == lat.shape and torch.isfinite(eps).all()
