"""Training the audio-driven Wan: flow matching, VauCustom's decoupled stages, resumable checkpoints.

Stages (each a separate run; a later stage starts from the files an earlier one wrote):
  a  dataset-level appearance LoRA (adapter "dataset"), no audio            -> lora-dataset
  b  that LoRA loaded and frozen (`--lora dataset=...`); train the audio cross-attention, audio
     encoder head and router head                                           -> adapter
  c  one character's LoRA on the base model, no audio, no dataset LoRA     -> lora-<id>
  d  the dataset LoRA dropped; the character's stage-c LoRA, the audio layers (stage-b adapter) and
     the character's learnable audio tokens trained jointly                 -> adapter, lora-<id>
     (the character file then also holds the tokens; load it with `lora.load_character`)
Objective: x_t = (1 - sigma) x0 + sigma * noise (diffusers' `FlowMatchEulerDiscreteScheduler.
scale_noise`), target = noise - x0. With a router head the routing is teacher-forced by noised
ground-truth masks, and the head (on detached inputs) is trained with Bind-Your-Avatar's
cross-entropy + spatio-temporal TV + layer variance at weights 1 / 0.001 / 8.

Data: a folder of `.safetensors` samples with tensors `latents` (C, F, H, W), `prompt_embeds`
(512, D), `text_len` (1,), `audio` (S, T) 16 kHz, `labels` (F, H/2, W/2) and metadata
{"token_groups": [[...], ...], "fps": 25, "num_frames": N} (stage d: optional "characters", the
character of each stream; without it every stream is the trained character; optional tensor
`wav2vec` (S, F, layers, hidden), the cached `AudioEncoder.hidden_states`). `--synthetic N`
makes tiny samples.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from models.avdit.adapter import AvditModel
from models.avdit.audio import AudioEncoder
from models.avdit.lora import add_character_lora, drop_lora, load_character, lora_parameters, save_character, save_lora
from models.avdit.router import labels_to_route, router_losses, teacher_route
from models.errors import ModelError
from models.loading import load_state_dict, read_metadata, save_state_dict

STAGES = ("a", "b", "c", "d")
CHECKPOINT = "checkpoint.safetensors"


def synthetic_samples(n: int, seed: int = 0, channels: int = 4, num_frames: int = 9, size: int = 8) -> list[dict]:
    """Tiny samples whose latents inside each character's half follow that character's loudness,
    so the audio layers have something real to learn."""
    g = torch.Generator().manual_seed(seed)
    lat_f = (num_frames - 1) // 4 + 1
    out = []
    for i in range(n):
        audio = torch.randn(2, num_frames * 640, generator=g) * torch.rand(2, 1, generator=g)
        labels = torch.zeros(lat_f, size // 2, size // 2, dtype=torch.long)
        labels[..., : size // 4] = 1
        labels[..., size // 4:] = 2
        loud = audio.abs().mean(1)
        latents = 0.1 * torch.randn(channels, lat_f, size, size, generator=g)
        latents[:, :, :, : size // 2] += loud[0]
        latents[:, :, :, size // 2:] -= loud[1]
        embeds = torch.zeros(512, 32)
        embeds[:4] = torch.randn(4, 32, generator=g)
        out.append({
            "latents": latents, "prompt_embeds": embeds, "text_len": torch.tensor([4]), "audio": audio,
            "labels": labels, "token_groups": [[0], [2]], "fps": 25, "num_frames": num_frames,
        })
    return out


def load_samples(folder) -> list[dict]:
    """Read every sample file in `folder` (safetensors only)."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise ModelError(f"training data: no .safetensors samples in {folder}", "see models/avdit/train.py for the format")
    samples = []
    for f in files:
        s = load_state_dict(f, "training data")
        s.update(read_metadata(f, "training data"))
        samples.append(s)
    return samples


IDENTITY_TOKENS = 4  # learnable audio tokens per character (stage d)


def prepare_stage(model: AvditModel, stage: str, character: Optional[str], rank: int,
                  skip_stage_a: bool = False) -> list[torch.nn.Parameter]:
    """Set up the adapters `stage` uses, freeze everything, then unfreeze what `stage` trains."""
    tr = model.transformer
    loaded = lambda: list(getattr(tr, "peft_config", {}) or {})  # noqa: E731
    if stage in ("c", "d") and not character:
        raise ModelError(f"stage {stage} trains one character but no character was given", "pass --character ID")
    if stage == "a" and "dataset" not in loaded():
        add_character_lora(tr, "dataset", rank)
    if stage == "b" and "dataset" not in loaded() and not skip_stage_a:
        raise ModelError(
            "stage b trains the audio layers over the frozen stage-a dataset LoRA, and none is loaded",
            "pass --lora dataset=RUN_A/lora-dataset.safetensors (or --skip-stage-a, accepting that the audio "
            "layers may absorb the training set's appearance, which VauCustom's decoupling exists to prevent)",
        )
    if stage in ("c", "d"):
        drop_lora(tr, "dataset")  # VauCustom: the character LoRA replaces the dataset-level one
    if stage == "c" and character not in loaded():
        add_character_lora(tr, character, rank)
    if stage == "d":
        if character not in loaded():
            raise ModelError(f"stage d fine-tunes {character}'s stage-c LoRA, and it is not loaded",
                             f"pass --lora {character}=RUN_C/lora-{character}.safetensors")
        if character not in model.identity_tokens:
            model.add_identity_tokens(character, IDENTITY_TOKENS)
    active = {"a": ["dataset"], "b": ["dataset"], "c": [character], "d": [character]}[stage]
    active = [n for n in active if n in loaded()]
    if active:
        tr.set_adapters(active)  # also marks them trainable; the freezing below decides what trains
    model.requires_grad_(False)
    params: list[torch.nn.Parameter] = []
    if stage in ("a", "c", "d"):
        params += lora_parameters(tr, active[0])
    if stage in ("b", "d"):
        params += list(model.audio_layers.parameters())
        params += [p for n, p in model.audio_encoder.named_parameters() if not n.startswith("wav2vec.")]
        if model.router is not None:
            params += list(model.router.parameters())
    if stage == "d":
        params.append(model.identity_tokens[character])
    for p in params:
        p.requires_grad_(True)
    return params


def training_loss(model: AvditModel, scheduler, sample: dict, stage: str, generator: torch.Generator,
                  character: Optional[str] = None) -> tuple[torch.Tensor, dict]:
    """Flow-matching loss (plus router losses) for one sample at a random noise level."""
    dev = next(model.transformer.parameters()).device
    x0 = sample["latents"][None].to(dev)
    noise = torch.randn(x0.shape, generator=generator).to(dev)
    t = scheduler.timesteps[torch.randint(len(scheduler.timesteps), (1,), generator=generator)]
    x_t = scheduler.scale_noise(x0, t, noise)
    use_audio = stage in ("b", "d")
    kwargs = {}
    if use_audio:
        enc = model.audio_encoder
        if "wav2vec" in sample:  # cached frozen features (S, F_video, layers, hidden)
            tokens = enc.from_features(sample["wav2vec"].to(dev))[None]
        else:
            tokens = enc(sample["audio"].to(dev), sample["num_frames"], sample["fps"])[None]
        route = labels_to_route(sample["labels"], tokens.shape[1])[None].to(dev)
        if model.router is not None:  # teacher forcing with augmented ground truth
            route = teacher_route(route, generator)
        kwargs = dict(audio=tokens, route=route, router_mode="teacher" if model.router is not None else "off")
        if stage == "d":
            kwargs["identity"] = list(sample.get("characters") or [character] * tokens.shape[1])
    pred = model(
        x_t, t.to(dev), sample["prompt_embeds"][None].to(dev), text_lens=sample["text_len"].view(1),
        token_groups=sample["token_groups"], **kwargs,
    )
    loss = F.mse_loss(pred.float(), (noise - x0).float())
    parts = {"flow": loss.item()}
    if use_audio and model.state.router_logits:
        r = router_losses(model.state.router_logits, sample["labels"].flatten()[None].to(dev), model.state.grid)
        loss = loss + r["total"]
        parts.update({k: v.item() for k, v in r.items() if k != "total"})
    return loss, parts


def save_checkpoint(path: Path, model: AvditModel, optimizer, step: int, stage: str) -> None:
    """Trainable tensors + optimizer moments + step, atomically, in one safetensors file."""
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    tensors = {f"param.{n}": p for n, p in named.items()}
    state = optimizer.state_dict()
    for idx, st in state["state"].items():
        for key, val in st.items():
            tensors[f"optim.{idx}.{key}"] = val if torch.is_tensor(val) else torch.tensor(val)
    meta = {"step": step, "stage": stage, "param_groups": state["param_groups"]}
    save_state_dict(tensors, path, meta)


def load_checkpoint(path: Path, model: AvditModel, optimizer, stage: str) -> int:
    """Restore a checkpoint written by `save_checkpoint`; returns the step to continue from."""
    meta = read_metadata(path, "checkpoint")
    if meta.get("stage") != stage:
        raise ModelError(f"checkpoint {path} is from stage {meta.get('stage')!r}, not {stage!r}", "use a fresh --out folder")
    sd = load_state_dict(path, "checkpoint")
    params = dict(model.named_parameters())
    saved = {k[len("param."):] for k in sd if k.startswith("param.")}
    trainable = {n for n, p in params.items() if p.requires_grad}
    if saved != trainable:
        diff = sorted(saved ^ trainable)[:3]
        raise ModelError(f"checkpoint {path} was written with other model settings (differs in {diff})",
                        "resume with the same flags (--router, --rank, --tiny...) or use a fresh --out folder")
    with torch.no_grad():
        for key, val in sd.items():
            if key.startswith("param."):
                params[key[len("param."):]].copy_(val)
    state: dict = {"state": {}, "param_groups": meta["param_groups"]}
    for key, val in sd.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state["state"].setdefault(int(idx), {})[name] = val
    optimizer.load_state_dict(state)
    return int(meta["step"])


def train(model: AvditModel, samples: list[dict], stage: str, out: Path, steps: int, lr: float = 1e-3,
          character: Optional[str] = None, rank: int = 128, seed: int = 0, save_every: int = 50, log=print,
          skip_stage_a: bool = False) -> list[float]:
    """Run (or resume) one stage; writes the checkpoint and the stage's adapter files into `out`."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    if stage not in STAGES:
        raise ModelError(f"unknown training stage {stage!r}", f"choose one of {', '.join(STAGES)}")
    params = prepare_stage(model, stage, character, rank, skip_stage_a)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.set_timesteps(1000)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / CHECKPOINT
    start = load_checkpoint(ckpt, model, optimizer, stage) if ckpt.exists() else 0
    generator = torch.Generator().manual_seed(seed + start)  # a resumed run does not replay old noise
    model.train()
    losses = []
    for step in range(start, steps):
        loss, parts = training_loss(model, scheduler, samples[step % len(samples)], stage, generator, character)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % save_every == 0 or step + 1 == steps:
            save_checkpoint(ckpt, model, optimizer, step + 1, stage)
            log(f"stage {stage} step {step + 1}/{steps} loss {loss.item():.4f} " + " ".join(f"{k}={v:.4f}" for k, v in parts.items()))
    model.eval()
    export(model, stage, character, out)
    return losses


def export(model: AvditModel, stage: str, character: Optional[str], out: Path) -> None:
    """Write what the stage produced: LoRA / character files and/or the audio adapter."""
    if stage == "a":
        save_lora(model.transformer, "dataset", out / "lora-dataset.safetensors")
    if stage in ("c", "d"):
        save_character(model, character, out / f"lora-{character}.safetensors")
    if stage in ("b", "d"):
        save_state_dict(model.adapter_state_dict(), out / "adapter.safetensors", {"stage": stage})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="compose train", description="Train the audio-driven Wan (stages a-d).")
    p.add_argument("--stage", choices=STAGES, required=True)
    p.add_argument("--out", type=Path, required=True, help="folder for the checkpoint and adapter files")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="folder of .safetensors training samples")
    src.add_argument("--synthetic", type=int, help="train on N synthetic samples (tiny smoke runs)")
    p.add_argument("--tiny", action="store_true", help="tiny random model instead of real weights")
    p.add_argument("--model-dir", type=Path, help="diffusers Wan folder (transformer/)")
    p.add_argument("--wav2vec-dir", type=Path, help="wav2vec2 folder")
    p.add_argument("--adapter", type=Path, help="start from this audio adapter (.safetensors)")
    p.add_argument("--lora", action="append", default=[], metavar="NAME=PATH", help="load a LoRA first")
    p.add_argument("--character", help="cast id whose LoRA stage c trains")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--rank", type=int, default=128, help="LoRA rank (VauCustom: 128)")
    p.add_argument("--router", action="store_true", help="also train the learned router head")
    p.add_argument("--skip-stage-a", action="store_true", help="stage b without the stage-a dataset LoRA (not advised)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=50)
    return p


def build_model(args) -> AvditModel:
    """The model a training run starts from: tiny random, or real local weights (+ adapter/LoRAs).
    A router head is built when `--router` is given or the adapter has one."""
    if args.stage == "d" and args.adapter is None:
        raise ModelError("stage d fine-tunes the stage-b audio adapter, and none was given",
                         "pass --adapter RUN_B/adapter.safetensors")
    sd = load_state_dict(args.adapter, "--adapter") if args.adapter else {}
    router = args.router or any(k.startswith("router.") for k in sd)
    if args.tiny:
        from models.avdit.tiny import tiny_model

        model = tiny_model(args.seed, router=router)
    else:
        from diffusers import WanTransformer3DModel
        from transformers import Wav2Vec2Model

        from models.loading import from_pretrained_local

        if args.model_dir is None or args.wav2vec_dir is None:
            raise ModelError("training real weights needs --model-dir and --wav2vec-dir", "pass both, or --tiny")
        tr = from_pretrained_local(WanTransformer3DModel, args.model_dir / "transformer", "--model-dir")
        wav = from_pretrained_local(Wav2Vec2Model, args.wav2vec_dir, "--wav2vec-dir")
        model = AvditModel(tr, AudioEncoder(wav, tr.config.num_attention_heads * tr.config.attention_head_dim), router=router)
    if sd:
        model.load_adapter_state_dict(sd)
    for spec in args.lora:
        name, _, path = spec.partition("=")
        load_character(model, path, name)
    return model


def train_command(args) -> int:
    """`compose train` entry point once arguments are parsed (see `build_parser`)."""
    samples = synthetic_samples(args.synthetic, args.seed) if args.synthetic else load_samples(args.data)
    model = build_model(args)
    if torch.cuda.is_available():
        model.cuda()
    losses = train(model, samples, args.stage, args.out, args.steps, args.lr, args.character, args.rank, args.seed,
                   args.save_every, skip_stage_a=args.skip_stage_a)
    if losses:
        print(f"stage {args.stage}: loss {losses[0]:.4f} -> {losses[-1]:.4f}; wrote {args.out}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    """Parse `argv` and train; ModelErrors are printed with their fix and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return train_command(args)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
