"""Step time and peak memory of the avdit transformer: text-CFG only vs region-selective audio CFG,
and, for the image-to-video presets, the MultiTalk/InfiniteTalk format for 1, 2 and 3 speakers.

Random weights give the real FLOPs. Default: a tiny model on CPU. On a GPU:
    python -m bench.avdit --preset wan2.1-1.3b --device cuda
(30 layers, 12 heads x 128, ffn 8960, 480x832 x 81 frames). Prints seconds per denoising step for
text CFG (2 passes) and region-selective audio CFG (3 passes, batched), their ratio, and peak memory.
    python -m bench.avdit --preset wan2.1-i2v-14b --device cuda --results bench/RESULTS.md
(Wan2.1-I2V-14B + the release's audio layers, 480x832 x 81 frames): s/step of the multitalk guidance
(3 passes in one batch; 2 passes at text scale 1 with a step-distillation LoRA) for 1 speaker
(audio everywhere), 2 (L-RoPE) and 3 (route masks), a window's time at 40 and at 8 steps, and peak
memory; `--results` appends the table, naming the GPU. `bench/gpu_check.sh` runs it with a timeout.
"""
from __future__ import annotations

import argparse
import sys

import torch

from bench.step_time import peak_memory_gib, time_mode
from models.avdit.adapter import TEXT_CONTEXT
from models.avdit.audio import latent_frames
from models.avdit.guidance import Guidance
from models.avdit.presets import PRESETS, build
from models.avdit.router import box_labels, labels_to_route


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    for name in ("layers", "heads", "head-dim", "ffn", "frames", "height", "width"):
        p.add_argument(f"--{name}", type=int, help="override the preset")
    p.add_argument("--streams", type=int, default=2, help="speech streams (characters)")
    p.add_argument("--audio-tokens", type=int, default=4, help="audio tokens per latent frame")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default=None)
    p.add_argument("--steps", type=int, default=3, help="timed steps per mode (after one warm-up)")
    p.add_argument("--speakers", type=int, nargs="+", default=[1, 2, 3], help="i2v presets: speaker counts")
    p.add_argument("--results", help="i2v presets: append a markdown table to this file (bench/RESULTS.md)")
    p.add_argument("--offload", action="store_true",
                   help="build on the CPU and stream Wan's blocks to the GPU (diffusers' group offload, as `offload: true`)")
    args = p.parse_args(argv)
    cfg = dict(PRESETS[args.preset])
    for key in ("layers", "heads", "head_dim", "ffn", "frames", "height", "width"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    args.cfg = cfg
    args.dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    cfg, dev = args.cfg, args.device
    dtype = getattr(torch, args.dtype)
    if args.offload:  # the layout I2VPipeline.from_local(offload=True) gives
        from models.avdit.i2v import stream_blocks

        model = build(cfg, "cpu", dtype)
        stream_blocks(model, dev)
    else:
        model = build(cfg, dev, dtype)
    if cfg.get("i2v"):
        from bench.avdit_release import release_bench

        return release_bench(model, cfg, args)
    dim = cfg["heads"] * cfg["head_dim"]
    lat_f = latent_frames(cfg["frames"])
    latents = torch.randn(1, cfg["channels"], lat_f, cfg["height"] // 8, cfg["width"] // 8, device=dev, dtype=dtype)
    grid = model.token_grid(latents)
    s = args.streams
    boxes = torch.tensor([[i / s, 0.1, (i + 1) / s, 1.0] for i in range(s)])
    labels = box_labels(boxes, grid)
    mask = (labels > 0).float().repeat_interleave(2, 1).repeat_interleave(2, 2)[None, None].to(dev)
    inputs = dict(
        latents=latents, timestep=torch.tensor([500.0], device=dev),
        prompt_embeds=torch.randn(1, TEXT_CONTEXT, cfg["text_dim"], device=dev, dtype=dtype),
        negative_embeds=torch.randn(1, TEXT_CONTEXT, cfg["text_dim"], device=dev, dtype=dtype),
        audio=torch.randn(1, s, lat_f, args.audio_tokens, dim, device=dev, dtype=dtype),
        route=labels_to_route(labels, s)[None].to(dev, dtype), mask=mask,
    )
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"device {dev} ({torch.cuda.get_device_name() if dev.startswith('cuda') else 'cpu'}), dtype {args.dtype}, "
          f"preset {args.preset}: {cfg['layers']} layers, {cfg['heads']}x{cfg['head_dim']} heads, ffn {cfg['ffn']}, "
          f"{cfg['frames']} frames {cfg['width']}x{cfg['height']} -> {grid[0] * grid[1] * grid[2]} tokens, {params:.1f} M params")
    results = {}
    for label, guide in (("text CFG (2 passes)", Guidance("text")), ("region audio CFG (3 passes)", Guidance("region"))):
        if dev.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        sec = time_mode(model, inputs, guide, args.steps, dev)
        results[label] = sec
        print(f"{label:30s} {sec:8.4f} s/step   peak memory {peak_memory_gib(dev):6.2f} GiB")
    ratio = results["region audio CFG (3 passes)"] / results["text CFG (2 passes)"]
    print(f"region / text ratio: {ratio:.2f}x (target <= 1.6x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
