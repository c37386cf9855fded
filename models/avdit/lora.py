"""Appearance LoRA per character (peft) on the Wan transformer's attention projections.

Each character is one named adapter; a shot with several characters activates all of theirs with
`use_characters` (diffusers' `set_adapters`). Adapters are saved as safetensors with their LoRA
config in the file's metadata, so loading needs nothing but the file.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Optional, Sequence

import torch
from peft import LoraConfig
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

from models.errors import ModelError
from models.loading import load_state_dict, read_metadata, save_state_dict

# Self- and text cross-attention projections of every block (not the audio layers, which are
# outside the transformer and trained separately).
TARGETS = ["attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0"]


def add_character_lora(transformer, name: str, rank: int = 16, alpha: Optional[int] = None, targets: Sequence[str] = TARGETS) -> None:
    """Add a fresh LoRA adapter `name` (B initialised to zero: no change until trained)."""
    config = LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=list(targets), init_lora_weights=True)
    transformer.add_adapter(config, adapter_name=name)


def lora_parameters(transformer, name: str) -> list[torch.nn.Parameter]:
    """The trainable tensors of adapter `name`."""
    return [p for n, p in transformer.named_parameters() if f".{name}." in n and "lora_" in n]


def save_lora(transformer, name: str, path) -> Path:
    """Write adapter `name` to a safetensors file (config in its metadata)."""
    cfg = transformer.peft_config[name]
    meta = {"rank": cfg.r, "alpha": cfg.lora_alpha, "targets": sorted(cfg.target_modules)}
    return save_state_dict(get_peft_model_state_dict(transformer, adapter_name=name), path, meta)


def load_lora(transformer, path, name: str) -> None:
    """Load a LoRA saved by `save_lora` as adapter `name`."""
    meta = read_metadata(path, "lora")
    if "rank" not in meta:
        raise ModelError(f"lora: {path} has no LoRA config in its metadata", "save it with models.avdit.lora.save_lora")
    sd = load_state_dict(path, "lora")
    add_character_lora(transformer, name, meta["rank"], meta["alpha"], meta["targets"])
    result = set_peft_model_state_dict(transformer, sd, adapter_name=name)
    bad = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if bad:
        raise ModelError(f"lora: {path} does not match this transformer ({bad[:3]})", "train it on the same base model")


def use_characters(transformer, names: Sequence[str], weights: Optional[Sequence[float]] = None) -> None:
    """Activate several characters' adapters together."""
    transformer.set_adapters(list(names), list(weights) if weights is not None else None)


@contextmanager
def identity_gate(transformer, gate: Optional[torch.Tensor]):
    """Scale every LoRA's contribution per batch row by `gate` (B,) while inside the block.

    ID guidance needs a pass "without the identity" in the same batched forward as the others;
    peft applies one adapter set to the whole batch, so the LoRA delta is re-weighted per row.
    """
    if gate is None:
        yield
        return
    hooks = []

    def hook(module, args, output):
        base = module.base_layer(args[0])
        g = gate.to(output.dtype).view(-1, *([1] * (output.ndim - 1)))
        return base + g * (output - base)

    for module in transformer.modules():
        if isinstance(module, BaseTunerLayer) and hasattr(module, "base_layer"):
            hooks.append(module.register_forward_hook(hook))
    try:
        yield
    finally:
        for h in hooks:
            h.remove()
