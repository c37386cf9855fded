"""Appearance LoRA per character (peft) on the Wan transformer's attention projections.

Each character is one named adapter; a shot with several characters activates all of theirs with
`use_characters` (diffusers' `set_adapters`). Adapters are saved as safetensors with their LoRA
config in the file's metadata, so loading needs nothing but the file. A character file (stage d)
is the same file plus the character's learned audio tokens under `identity_tokens`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

from models.errors import ModelError
from models.loading import load_state_dict, read_metadata, save_state_dict

# Self- and text cross-attention projections of every block (not the audio layers, which are
# outside the transformer and trained separately).
TARGETS = ["attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0"]


def add_character_lora(transformer, name: str, rank: int = 128, alpha: Optional[int] = None, targets: Sequence[str] = TARGETS) -> None:
    """Add a fresh LoRA adapter `name` (B initialised to zero: no change until trained)."""
    config = LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=list(targets), init_lora_weights=True)
    transformer.add_adapter(config, adapter_name=name)


def lora_parameters(transformer, name: str) -> list[torch.nn.Parameter]:
    """The trainable tensors of adapter `name`."""
    return [p for n, p in transformer.named_parameters() if f".{name}." in n and "lora_" in n]


def save_lora(transformer, name: str, path, extra: Optional[dict[str, torch.Tensor]] = None) -> Path:
    """Write adapter `name` (and any `extra` tensors) to a safetensors file, config in its metadata."""
    cfg = transformer.peft_config[name]
    meta = {"rank": cfg.r, "alpha": cfg.lora_alpha, "targets": sorted(cfg.target_modules)}
    tensors = dict(get_peft_model_state_dict(transformer, adapter_name=name))
    tensors.update(extra or {})
    return save_state_dict(tensors, path, meta)


def load_lora(transformer, path, name: str) -> dict[str, torch.Tensor]:
    """Load a LoRA saved by `save_lora` as adapter `name`; returns the file's `extra` tensors."""
    meta = read_metadata(path, "lora")
    if "rank" not in meta:
        raise ModelError(f"lora: {path} has no LoRA config in its metadata", "save it with models.avdit.lora.save_lora")
    sd = load_state_dict(path, "lora")
    extra = {k: sd.pop(k) for k in list(sd) if "lora_" not in k}
    add_character_lora(transformer, name, meta["rank"], meta["alpha"], meta["targets"])
    result = set_peft_model_state_dict(transformer, sd, adapter_name=name)
    bad = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if bad:
        raise ModelError(f"lora: {path} does not match this transformer ({bad[:3]})", "train it on the same base model")
    return extra


IDENTITY_KEY = "identity_tokens"


def save_character(model, name: str, path) -> Path:
    """Character `name`'s file: their LoRA plus, after stage d, their learned audio tokens."""
    extra = {IDENTITY_KEY: model.identity_tokens[name]} if name in model.identity_tokens else None
    return save_lora(model.transformer, name, path, extra)


def load_character(model, path, name: str) -> None:
    """Load a character file (`save_character`, or a stage-c LoRA) into an `AvditModel` as `name`."""
    extra = load_lora(model.transformer, path, name)
    tokens = extra.pop(IDENTITY_KEY, None)
    if extra:
        raise ModelError(f"lora: {path} holds unknown tensors {sorted(extra)[:3]}", "use a file written by compose train")
    if tokens is None:
        return
    if tokens.ndim != 3 or tokens.shape[0] != model.num_layers or tokens.shape[2] != model.dim:
        raise ModelError(f"lora: {path} has identity tokens of shape {tuple(tokens.shape)}, this model needs "
                         f"({model.num_layers}, K, {model.dim})", "train stage d on the same base model")
    p = next(model.audio_layers.parameters())
    model.identity_tokens[name] = torch.nn.Parameter(tokens.to(p.device, p.dtype), requires_grad=False)


def use_characters(transformer, names: Sequence[str], weights: Optional[Sequence[float]] = None) -> None:
    """Activate several characters' adapters together."""
    transformer.set_adapters(list(names), list(weights) if weights is not None else None)


def drop_lora(transformer, name: str) -> None:
    """Remove adapter `name` from the transformer if it is there."""
    if name in (getattr(transformer, "peft_config", {}) or {}):
        transformer.delete_adapters(name)


def fuse_speed_lora(transformer, path, scale: float = 1.0) -> None:
    """Fuse a step-distillation LoRA (lightx2v, FusionX: original Wan or diffusers key names) into
    the transformer's weights, so the few-step preset costs nothing per step; diffusers converts
    the key names and peft applies it."""
    from diffusers.loaders.lora_pipeline import WanLoraLoaderMixin

    sd = WanLoraLoaderMixin.lora_state_dict(load_state_dict(path, "avdit.lora"))
    try:
        transformer.load_lora_adapter(sd, prefix="transformer", adapter_name="speed")
    except (ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"avdit.lora {path} does not fit this Wan transformer: {exc}",
                         "use a Wan2.1 14B LoRA (e.g. lightx2v's step-distillation LoRA) in safetensors") from exc
    transformer.fuse_lora(lora_scale=scale, adapter_names=["speed"])
    transformer.unload_lora()
