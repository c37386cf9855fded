"""The released-adapter (MultiTalk/InfiniteTalk) half of `bench.avdit`: Wan I2V + release audio
layers at random weights, one batched guided step for 1, 2 and 3 speakers."""
from __future__ import annotations

import platform
from datetime import date

import torch

from bench.step_time import peak_memory_gib, time_mode
from models.avdit.adapter import TEXT_CONTEXT
from models.avdit.audio import latent_frames
from models.avdit.guidance import Guidance
from models.avdit.multitalk import lrope_positions
from models.avdit.router import box_labels, labels_to_route

GUIDANCE = {"multitalk 40 steps (s_t 5, s_a 4: 3 passes)": (Guidance("multitalk", 5.0, 4.0), 40),
            "distilled 8 steps (s_t 1, s_a 2: 2 passes)": (Guidance("multitalk", 1.0, 2.0), 8)}


def release_inputs(model, cfg: dict, speakers: int, dev: str, dtype) -> dict:
    """guided_noise inputs for one 480p window: 36-channel latents, CLIP tokens, audio + null audio,
    and the binding the pipeline would use (none / L-RoPE / route masks)."""
    lat_f = latent_frames(cfg["frames"])
    latents = torch.randn(1, 2 * cfg["channels"] + 4, lat_f, cfg["height"] // 8, cfg["width"] // 8, device=dev, dtype=dtype)
    grid = model.token_grid(latents)
    boxes = torch.tensor([[i / speakers, 0.1, (i + 1) / speakers, 1.0] for i in range(speakers)])
    labels = box_labels(boxes, grid)
    audio = torch.randn(1, speakers, lat_f, cfg["audio_tokens"], cfg["audio_dim"], device=dev, dtype=dtype)
    inputs = dict(latents=latents, timestep=torch.tensor([500.0], device=dev),
                  prompt_embeds=torch.randn(1, TEXT_CONTEXT, cfg["text_dim"], device=dev, dtype=dtype),
                  negative_embeds=torch.randn(1, TEXT_CONTEXT, cfg["text_dim"], device=dev, dtype=dtype),
                  audio=audio, null_audio=torch.randn_like(audio),
                  image_embeds=torch.randn(1, cfg["image_tokens"], cfg["image_dim"], device=dev, dtype=dtype))
    if speakers == 2:
        q, k = lrope_positions(labels, cfg["audio_tokens"])
        inputs["positions"] = (q[None].to(dev), k[None].to(dev))
    elif speakers > 2:
        inputs["route"] = labels_to_route(labels, speakers)[None].to(dev, dtype)
    return inputs


def release_bench(model, cfg: dict, args) -> int:
    dev, cuda = args.device, args.device.startswith("cuda")
    name = torch.cuda.get_device_name() if cuda else f"CPU ({platform.processor() or platform.machine()})"
    params = sum(p.numel() for p in model.parameters()) / 1e9
    tokens = latent_frames(cfg["frames"]) * cfg["height"] // 16 * cfg["width"] // 16
    offload = ", group offload" if args.offload else ""
    head = (f"{name}, {args.dtype}, torch {torch.__version__}, SDPA{offload}; preset {args.preset}: "
            f"{params:.2f} B params, {cfg['frames']} frames {cfg['width']}x{cfg['height']} -> {tokens} tokens per pass")
    print(head)
    rows = []
    for s in args.speakers:
        inputs = release_inputs(model, cfg, s, dev, getattr(torch, args.dtype))
        for label, (guide, steps) in GUIDANCE.items():
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            sec = time_mode(model, inputs, guide, args.steps, dev)
            mem = peak_memory_gib(dev)
            rows.append((s, label, sec, sec * steps, mem))
            print(f"{s} speaker(s)  {label:44s} {sec:8.3f} s/step  {sec * steps / 60:7.2f} min/window  peak {mem:6.2f} GiB")
    if args.results:
        with open(args.results, "a") as f:
            f.write(f"\n## avdit, released-adapter format at random weights ({date.today()}): "
                    f"`python -m bench.avdit --preset {args.preset}`\n\n{head}. Goal on one H100/H200-class GPU at "
                    "480p x 81 frames, 3 batched passes: <= 12 s/step (MultiTalk publishes 35 s/step on an A100), "
                    "< 80 GB.\n\n| speakers | guidance | s/step | one window | peak memory GiB |\n|---|---|---|---|---|\n")
            for s, label, sec, total, mem in rows:
                f.write(f"| {s} | {label} | {sec:.3f} | {total / 60:.2f} min | {mem:.1f} |\n")
    return 0
