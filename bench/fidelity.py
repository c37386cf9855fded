"""Toy-scale fidelity study of the avdit method on CPU: does the model do what the seeds say?

Real classes throughout: a small `WanTransformer3DModel` wrapped by `AvditModel`, the `AudioEncoder`
on a tiny random wav2vec2 (features cached), `models.avdit.train.train` for stage (b) with the
router head, `guided_noise` for every guidance mode. Synthetic data: latents drawn directly (no VAE)
with a smooth-noise background and two "sprites" whose body colour is set by their trigger word and
whose mouth patch (channel 3) follows that sprite's audio envelope, one value per latent frame; the
audio is a harmonic buzz shaped by the envelope. Generation starts from the reference latents
noised to sigma 0.8 with neutral mouths (the layout survives, the mouths must come from the audio)
and denoises the rest of the schedule.

    python bench/fidelity.py            # full study (about 10 minutes on 2 cores)
    python bench/fidelity.py --fast     # the slice the test suite runs
"""
from __future__ import annotations

import argparse
import hashlib
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.avdit.guidance import Guidance, guided_noise  # noqa: E402
from models.avdit.router import box_labels, labels_to_route, masks_from_attention, uniform_shares  # noqa: E402
from models.avdit.tiny import TinyPrompt, tiny_model  # noqa: E402

FPS, LAT_F, SIZE, SPRITE, C = 25, 9, 16, 6, 4
FRAMES = (LAT_F - 1) * 4 + 1
RATE = 16000
NAMES = ["ALPHA", "BRAVO", "CAROL", "DELTA"]
MOUTH_AMP = 2.0
SIGMA0 = 0.8


def colour(name: str) -> torch.Tensor:
    """A fixed body colour per identity on channels 0-2 (channel 3 carries the mouth)."""
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")
    c = torch.randn(3, generator=torch.Generator().manual_seed(seed))
    return torch.cat([1.5 * c / c.norm(), torch.zeros(1)])


def smooth_noise(g: torch.Generator) -> torch.Tensor:
    low = torch.randn(1, C, 4, 4, generator=g)
    return 0.5 * F.interpolate(low, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0]


def buzz(env: torch.Tensor, f0: float) -> torch.Tensor:
    """16 kHz harmonic buzz whose loudness per video frame follows the latent-frame envelope."""
    per_video = torch.cat([env[:1], env[1:].repeat_interleave(4)])  # latent 0 = frame 0, then 4 frames each
    n = int(round(FRAMES * RATE / FPS))
    t = torch.arange(n) / RATE
    wave = sum(torch.sin(2 * math.pi * f0 * h * t) / h for h in range(1, 6))
    amp = per_video[(torch.arange(n) * FPS // RATE).clamp_max(FRAMES - 1)]
    return 0.3 * wave * (0.02 + amp)


def make_sample(g: torch.Generator, layout: str, prompt_encoder, encoder) -> dict:
    """Two sprites; `layout`: random (training), standard (1 left of 2), swapped (1 right), moving (they cross)."""
    ids = torch.randperm(len(NAMES), generator=g)[:2].tolist()
    names = [NAMES[i] for i in ids]
    bg = smooth_noise(g)
    x0 = bg[:, None].expand(C, LAT_F, SIZE, SIZE).clone()
    envs = torch.rand(2, LAT_F, generator=g)
    slots = SIZE // 2 - SPRITE // 2  # even token-aligned offsets 0..5 (x2)
    if layout == "random":
        def spot():
            return 2 * int(torch.randint(0, slots, (1,), generator=g)), 2 * int(torch.randint(0, slots, (1,), generator=g))
        pos = [spot(), spot()]
        while abs(pos[0][1] - pos[1][1]) < SPRITE and abs(pos[0][0] - pos[1][0]) < SPRITE:  # no overlap
            pos = [spot(), spot()]
        track = [[p] * LAT_F for p in pos]
    else:
        y = 2 * int(torch.randint(0, slots, (1,), generator=g))
        left, right = 0, SIZE - SPRITE
        a, b = (left, right) if layout == "standard" else (right, left)
        if layout == "moving":  # 1 walks from right to left, 2 the other way, one row apart
            xs = torch.linspace(right, left, LAT_F).div(2).round().long().mul(2).tolist()
            track = [[(y, x) for x in xs], [(min(y + SPRITE, SIZE - SPRITE), right - x) for x in xs]]
        else:
            track = [[(y, a)] * LAT_F, [(y, b)] * LAT_F]
    labels = torch.zeros(LAT_F, SIZE // 2, SIZE // 2, dtype=torch.long)
    mouths = torch.zeros(2, LAT_F, SIZE, SIZE, dtype=torch.bool)
    for k in range(2):
        for f, (y, x) in enumerate(track[k]):
            x0[:, f, y:y + SPRITE, x:x + SPRITE] = colour(names[k])[:, None, None]
            x0[3, f, y + 4:y + 6, x + 2:x + 4] = MOUTH_AMP * envs[k, f]
            mouths[k, f, y + 4:y + 6, x + 2:x + 4] = True
            labels[f, y // 2:(y + SPRITE) // 2, x // 2:(x + SPRITE) // 2] = k + 1
    prompt = f"<s1> {names[0]} talks with <s2> {names[1]} ."
    embeds, lens, _ = prompt_encoder([prompt])
    wav = torch.stack([buzz(envs[k], 110.0 + 70.0 * ids[k]) for k in range(2)])
    with torch.no_grad():
        feats = encoder.hidden_states(wav, FRAMES, FPS)
    return {"latents": x0, "prompt_embeds": embeds[0], "text_len": lens, "audio": wav, "wav2vec": feats, "labels": labels,
            "token_groups": [[0, 1], [4, 5]], "fps": FPS, "num_frames": FRAMES, "envs": envs, "mouths": mouths}


def pretrain_base(model, samples, steps: int, lr: float, log) -> None:
    """The 'pretrained T2V backbone': the whole transformer learns the toy videos, no audio."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sched.set_timesteps(1000)
    tr = model.transformer
    tr.requires_grad_(True).train()
    opt = torch.optim.AdamW(tr.parameters(), lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    for step in range(steps):
        batch = [samples[int(i)] for i in torch.randint(len(samples), (4,), generator=g)]
        x0 = torch.stack([s["latents"] for s in batch])
        noise = torch.randn(x0.shape, generator=g)
        t = sched.timesteps[torch.randint(len(sched.timesteps), (len(batch),), generator=g)]
        x_t = torch.stack([sched.scale_noise(x0[i:i + 1], t[i:i + 1], noise[i:i + 1])[0] for i in range(len(batch))])
        pred = tr(x_t, t, torch.stack([s["prompt_embeds"] for s in batch]), return_dict=False)[0]
        loss = F.mse_loss(pred, noise - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % max(1, steps // 4) == 0:
            log(f"  base step {step + 1}/{steps} loss {loss.item():.4f}")
    tr.requires_grad_(False).eval()


def audio_tokens(model, sample, streams=None):
    feats = sample["wav2vec"] if streams is None else sample["wav2vec"][streams]
    with torch.no_grad():
        return model.audio_encoder.from_features(feats)[None]


def mouth_flow_loss(model, samples, kind: str) -> float:
    """Flow-matching MSE on the mouth pixels at sigmas 0.5-0.9 with no / shuffled / true audio."""
    g = torch.Generator().manual_seed(11)
    total, count = 0.0, 0
    for i, s in enumerate(samples):
        other = samples[(i + 1) % len(samples)]
        x0 = s["latents"][None]
        mouth = s["mouths"].any(0)[None, None].expand_as(x0)
        route = labels_to_route(s["labels"], 2)[None]
        for sigma in (0.5, 0.7, 0.9):
            noise = torch.randn(x0.shape, generator=g)
            x_t = (1 - sigma) * x0 + sigma * noise
            audio = None if kind == "none" else audio_tokens(model, other if kind == "shuffled" else s)
            with torch.no_grad():
                pred = model(x_t, torch.tensor([sigma * 1000]), s["prompt_embeds"][None], audio=audio, route=route,
                             text_lens=s["text_len"])
            total += float(((pred - (noise - x0))[mouth] ** 2).mean())
            count += 1
    return total / count


def generate(model, s, guidance: Guidance, routing: str = "gt", swap: bool = False, steps: int = 8, seed: int = 0,
             threshold: float = 0.5, audio: bool = True):
    """Denoise from the reference noised to SIGMA0 (neutral mouths). Returns (latents, labels used)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sched.set_timesteps(int(round(steps / SIGMA0)))
    start = int((sched.sigmas[:-1] > SIGMA0 + 1e-6).sum())
    sched.set_begin_index(start)
    ref = s["latents"].clone()
    ref[3][s["mouths"].any(0)] = MOUTH_AMP * 0.5
    g = torch.Generator().manual_seed(seed)
    sigma = float(sched.sigmas[start])
    x = (1 - sigma) * ref[None] + sigma * torch.randn(ref[None].shape, generator=g)
    grid = (LAT_F, SIZE // 2, SIZE // 2)
    boxes = box_labels(torch.tensor([[0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 1.0]]), grid)  # 1 left, 2 right
    # Router and attention start from the boxes (M of the first step) and refine them as they go.
    labels = {"gt": s["labels"], "none": None}.get(routing, boxes)
    tokens = audio_tokens(model, s, [1, 0] if swap else None) if audio else None
    neg, neg_lens, _ = TinyPrompt()([""])
    capture = {1} if routing == "attention" else None
    baseline = uniform_shares(s["token_groups"], int(s["text_len"][0]))
    for t in sched.timesteps[start:]:
        route = None if labels is None else labels_to_route(labels, 2)[None]
        mask = None if labels is None else (labels > 0).float().repeat_interleave(2, 1).repeat_interleave(2, 2)[None, None]
        if mask is None:
            mask = torch.ones(1, 1, LAT_F, SIZE, SIZE)
        with torch.no_grad():
            eps = guided_noise(model, x, t.view(1), s["prompt_embeds"][None], neg, guidance, tokens, route, mask,
                               s["text_len"], neg_lens, s["token_groups"], capture,
                               router_mode="predict" if routing == "router" else "off", router_threshold=threshold)
        x = sched.step(eps, t, x, return_dict=False)[0]
        if routing == "router":
            labels = model.state.router_labels[guidance.conditional_row].view(grid)
        if routing == "attention":
            labels = masks_from_attention(model.captured_maps()[guidance.conditional_row].view(2, *grid), baseline)
    return x[0], labels


def mouth_readout(x: torch.Tensor, s: dict) -> torch.Tensor:
    """(2, F) mean of channel 3 over each sprite's mouth pixels, per latent frame."""
    return torch.stack([torch.stack([x[3, f][s["mouths"][k, f]].mean() for f in range(LAT_F)]) for k in range(2)])


def corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm() + 1e-8))


def sync(read: torch.Tensor, envs: torch.Tensor) -> float:
    """Correlation with the own envelope at lag 0 minus the mean at lags -1 and +1 (mean over sprites)."""
    out = []
    for k in range(2):
        lag0 = corr(read[k], envs[k])
        lags = [corr(read[k, 1:], envs[k, :-1]), corr(read[k, :-1], envs[k, 1:])]
        out.append(lag0 - sum(lags) / 2)
    return sum(out) / len(out)


def background_change(x: torch.Tensor, ref: torch.Tensor, s: dict) -> float:
    bg = (s["labels"] == 0).repeat_interleave(2, 1).repeat_interleave(2, 2)[None].expand_as(x)
    return float((x - ref)[bg].abs().mean())


def binding(model, samples, routing: str, guidance: Guidance, steps: int) -> float:
    """Share of (sample, sprite, stream order) where the mouth follows its own stream more than the other."""
    hits = total = 0
    for s in samples:
        for swap in (False, True):
            x, _ = generate(model, s, guidance, routing, swap, steps)
            read = mouth_readout(x, s)
            for k in range(2):
                own, other = (1 - k, k) if swap else (k, 1 - k)  # swapped streams: sprite k hears stream 1-k
                hits += corr(read[k], s["envs"][own]) > corr(read[k], s["envs"][other])
                total += 1
    return hits / total


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def study(fast: bool = False, log=print) -> dict:
    """Run every measurement; returns the numbers the table prints."""
    torch.manual_seed(0)
    torch.set_num_threads(2)
    n_train, n_eval = (16, 3) if fast else (96, 8)
    base_steps, b_steps, gen_steps = (40, 40, 4) if fast else (600, 800, 6)
    model = tiny_model(seed=0, router=True, layers=3, head_dim=16, ffn=64)
    prompt = TinyPrompt()
    g = torch.Generator().manual_seed(1)
    train_set = [make_sample(g, "random", prompt, model.audio_encoder) for _ in range(n_train)]
    evals = {lay: [make_sample(g, lay, prompt, model.audio_encoder) for _ in range(n_eval)] for lay in ("standard", "swapped", "moving")}
    held = evals["standard"] + evals["swapped"]
    res: dict = {}
    t0 = time.time()
    log(f"base pretrain ({base_steps} steps, batch 4)")
    pretrain_base(model, train_set, base_steps, 2e-3, log)
    res["loss_before_b"] = {k: mouth_flow_loss(model, held, k) for k in ("none", "true")}
    log(f"stage b with ground-truth routes and the router head ({b_steps} steps)  [{time.time() - t0:.0f}s]")
    from models.avdit.train import train

    with tempfile.TemporaryDirectory() as out:
        train(model, train_set, "b", Path(out), b_steps, lr=2e-3, rank=4, save_every=10 ** 6, log=lambda m: None,
              skip_stage_a=True)
    res["loss"] = {k: mouth_flow_loss(model, held, k) for k in ("none", "shuffled", "true")}
    log(f"guidance sweep  [{time.time() - t0:.0f}s]")
    scales = (3.0,) if fast else (1.5, 3.0, 6.0)
    res["cfg"] = {}
    # Background reference: the same start and noise with no audio anywhere (text CFG only).
    refs = [generate(model, s, Guidance("global", 2.0, 0.0), "gt", steps=gen_steps, audio=False)[0] for s in held]
    runs = [("text", Guidance("text", 2.0))] + [(f"{m} {sa:g}", Guidance(m, 2.0, sa)) for m in ("global", "region") for sa in scales]
    for name, guide in runs:
        xs = [generate(model, s, guide, "gt", steps=gen_steps)[0] for s in held]
        res["cfg"][name] = {
            "sync": sum(sync(mouth_readout(x, s), s["envs"]) for x, s in zip(xs, held)) / len(held),
            "bg": sum(background_change(x, r, s) for x, r, s in zip(xs, refs, held)) / len(held),
        }
    log(f"binding  [{time.time() - t0:.0f}s]")
    guide = Guidance("global", 2.0, 3.0)
    routings, layouts = (("gt", "none"), ("swapped",)) if fast else (("gt", "boxes", "none", "router", "attention"), tuple(evals))
    res["binding"] = {r: {lay: binding(model, evals[lay], r, guide, gen_steps) for lay in layouts} for r in routings}
    ious, router_ious = [], []
    for s in ([] if fast else held):
        _, att = generate(model, s, guide, "attention", steps=gen_steps)
        _, rl = generate(model, s, guide, "router", steps=gen_steps)
        ious.append(iou(att > 0, s["labels"] > 0))
        router_ious.append(iou(rl > 0, s["labels"] > 0))
    res["iou"] = {"attention": sum(ious) / max(len(ious), 1), "router": sum(router_ious) / max(len(router_ious), 1)}
    res["seconds"] = time.time() - t0
    return res


def table(res: dict) -> str:
    lines = ["| face-region flow loss (mouth pixels, sigma 0.5-0.9) | value |", "|---|---|"]
    lines += [f"| base model, before stage b (no audio) | {res['loss_before_b']['none']:.4f} |"]
    lines += [f"| {k} audio | {v:.4f} |" for k, v in res["loss"].items()]
    lines += ["", "| guidance (s_t 2) | sync (lag 0 - lag +/-1) | background change vs no audio at all |", "|---|---|---|"]
    lines += [f"| {'no audio CFG (text)' if k == 'text' else k} | {v['sync']:.3f} | {v['bg']:.4f} |" for k, v in res["cfg"].items()]
    layouts = list(next(iter(res["binding"].values())))
    lines += ["", "| binding accuracy (global CFG 3) | " + " | ".join(f"{lay} layout" for lay in layouts) + " |",
              "|---" * (len(layouts) + 1) + "|"]
    names = {"gt": "ground-truth masks", "boxes": "layout boxes", "none": "no routing", "router": "learned router",
             "attention": "attention labels"}
    lines += [f"| {names[r]} | " + " | ".join(f"{v:.2f}" for v in row.values()) + " |" for r, row in res["binding"].items()]
    lines += ["", f"mask IoU with the sprites: attention-built M {res['iou']['attention']:.2f}, "
                  f"learned router {res['iou']['router']:.2f}; {res['seconds']:.0f} s"]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fast", action="store_true", help="the few-dozen-step slice the tests run")
    args = p.parse_args(argv)
    print(table(study(args.fast, log=lambda m: print(m, file=sys.stderr, flush=True))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
