"""Classifier-free guidance for text, audio (global or region-selective) and identity.

Region-selective audio CFG (VauCustom):
    eps = eps_u + s_t (eps_t - eps_u) + s_a * M * (eps_ta - eps_t)
with eps_u unconditional, eps_t text only, eps_ta text + audio, and M the speakers' router mask in
latent space (M = 1 everywhere is global audio CFG). Identity guidance (ID-LoRA) adds
    s_id * (eps_ta - eps_ta_without_identity_lora).
All passes of one step run as one batched forward: rows differ only in prompt and gates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from models.avdit.lora import identity_gate

MODES = ("text", "audio", "region")


def combine(
    eps_u: torch.Tensor,
    eps_t: torch.Tensor,
    text_scale: float,
    eps_ta: Optional[torch.Tensor] = None,
    audio_scale: float = 0.0,
    mask: Optional[torch.Tensor] = None,
    eps_noid: Optional[torch.Tensor] = None,
    id_scale: float = 0.0,
) -> torch.Tensor:
    """The guided prediction from the passes' predictions (see the module docstring)."""
    eps = eps_u + text_scale * (eps_t - eps_u)
    if eps_ta is not None:
        delta = eps_ta - eps_t
        eps = eps + audio_scale * (delta if mask is None else mask.to(delta.dtype) * delta)
    if eps_noid is not None:
        eps = eps + id_scale * (eps_ta - eps_noid)
    return eps


@dataclass
class Guidance:
    """How to guide: `mode` text (2 passes), audio or region (3 passes), +1 pass for identity."""

    mode: str = "region"
    text_scale: float = 5.0
    audio_scale: float = 4.0
    id_scale: float = 0.0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"guidance mode {self.mode!r} is not one of {MODES}")

    @property
    def passes(self) -> int:
        n = 2 if self.mode == "text" else 3
        return n + (1 if self.id_scale and self.mode != "text" else 0)


def guided_noise(
    model,
    latents: torch.Tensor,
    timestep: torch.Tensor,
    prompt_embeds: torch.Tensor,
    negative_embeds: torch.Tensor,
    guidance: Guidance,
    audio: Optional[torch.Tensor] = None,
    route: Optional[torch.Tensor] = None,
    mask: Optional[torch.Tensor] = None,
    text_lens: Optional[torch.Tensor] = None,
    negative_lens: Optional[torch.Tensor] = None,
    token_groups: Optional[list] = None,
    capture_layers: Optional[set] = None,
) -> torch.Tensor:
    """One guided prediction for a single sample (batch 1), every pass in one forward.

    Rows: 0 unconditional, 1 text (audio gated off), 2 text + audio, 3 text + audio without the
    identity LoRA. In `text` mode row 1 carries the audio, so audio still conditions the video.
    """
    p = guidance.passes
    embeds = torch.cat([negative_embeds] + [prompt_embeds] * (p - 1))
    audio_gate = torch.tensor([0.0, 0.0, 1.0, 1.0][:p]) if guidance.mode != "text" else torch.tensor([0.0, 1.0])
    lens = None
    if text_lens is not None:
        neg = negative_lens if negative_lens is not None else text_lens
        lens = torch.cat([neg] + [text_lens] * (p - 1))
    lora_gate = torch.tensor([1.0, 1.0, 1.0, 0.0]) if p == 4 else None
    with identity_gate(model.transformer, lora_gate.to(latents.device) if lora_gate is not None else None):
        eps = model(
            latents.expand(p, *latents.shape[1:]),
            timestep.expand(p),
            embeds,
            audio=None if audio is None else audio.expand(p, *audio.shape[1:]),
            route=None if route is None else route.expand(p, *route.shape[1:]),
            audio_gate=audio_gate.to(latents.device) if audio is not None else None,
            text_lens=lens,
            token_groups=token_groups,
            capture_layers=capture_layers,
        )
    parts = eps.float().chunk(p)
    if guidance.mode == "text":
        return combine(parts[0], parts[1], guidance.text_scale)
    region = mask if guidance.mode == "region" else None
    return combine(
        parts[0], parts[1], guidance.text_scale, parts[2], guidance.audio_scale, region,
        parts[3] if p == 4 else None, guidance.id_scale,
    )
