"""Classifier-free guidance: none, text only, global audio, region-selective audio; identity guidance.

With eps_u (negative prompt), eps_t (prompt), eps_ta (prompt + audio) and a superscript a for
"audio on":
    none    eps = eps_ta                                            (1 pass, no CFG)
    text    eps = eps_u^a + s_t (eps_ta - eps_u^a)                   (audio in every row: no audio CFG)
    global  eps = eps_u + s_t (eps_t - eps_u) + s_a (eps_ta - eps_t)       (VauCustom eq. 5)
    region  eps = eps_u + s_t (eps_t - eps_u) + s_a M (eps_ta - eps_t)     (VauCustom eq. 6)
    multitalk eps = eps(0,0) + s_t [eps(T,A) - eps(0,A)] + s_a [eps(0,A) - eps(0,0)]   (MultiTalk)
              and, at s_t = 1 (step-distilled LoRAs), eps = eps(T,0) + s_a [eps(T,A) - eps(T,0)]
              in 2 passes, as the release does
where, in multitalk mode, audio "off" is the null audio (zero wav2vec features through the
projection, `null_audio`), not a gate.
M is the speakers' mask in latent space. Identity guidance (ID-LoRA eq. 5,
eps = eps_noref + s_id (eps_ref - eps_noref)) adds (s_id - 1) (eps_ta - eps_ta^noid), where
eps_ta^noid drops the characters' learned identity tokens (the reference) and keeps everything
else, LoRAs included; s_id = 1 is no identity guidance. All passes of one step run as one batched
forward: rows differ only in prompt and gates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch

from models.errors import ModelError

MODES = ("none", "text", "global", "region", "multitalk")


class Row(NamedTuple):
    """One pass of a guided step: which prompt, and whether audio and identity tokens are on."""

    negative: bool
    audio: bool
    identity: bool


@dataclass
class Guidance:
    """How to guide: `mode` (see the module docstring) and the scales; VauCustom's s_t 5, s_a 9."""

    mode: str = "region"
    text_scale: float = 5.0
    audio_scale: float = 9.0
    id_scale: float = 1.0  # ID-LoRA's s_id; 1 = off (their default is 4)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ModelError(f"guidance mode {self.mode!r} is not one of {MODES}", f"use one of {', '.join(MODES)}")

    @property
    def identity(self) -> bool:
        return self.id_scale != 1.0

    def rows(self) -> list[Row]:
        """The passes, in batch order; the full conditional pass (prompt, audio, identity) is
        `rows().index(Row(False, True, True))`."""
        if self.mode == "none":
            rows = [Row(False, True, True)]
        elif self.mode == "text":
            rows = [Row(True, True, True), Row(False, True, True)]
        elif self.mode == "multitalk" and self.text_scale == 1.0:  # (T, A), (T, 0)
            rows = [Row(False, True, True), Row(False, False, True)]
        elif self.mode == "multitalk":  # (T, A), (0, A), (0, 0)
            rows = [Row(False, True, True), Row(True, True, True), Row(True, False, True)]
        else:
            rows = [Row(True, False, True), Row(False, False, True), Row(False, True, True)]
        return rows + [Row(False, True, False)] if self.identity else rows

    @property
    def passes(self) -> int:
        return len(self.rows())

    @property
    def conditional_row(self) -> int:
        return self.rows().index(Row(False, True, True))

    def combine(self, parts: list[torch.Tensor], mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The guided prediction from the rows' predictions (in `rows()` order)."""
        if self.mode == "none":
            eps = parts[0]
        elif self.mode == "text":
            eps = parts[0] + self.text_scale * (parts[1] - parts[0])
        elif self.mode == "multitalk" and self.text_scale == 1.0:
            full, no_audio = parts[:2]
            eps = no_audio + self.audio_scale * (full - no_audio)
        elif self.mode == "multitalk":
            full, no_text, null = parts[:3]
            eps = null + self.text_scale * (full - no_text) + self.audio_scale * (no_text - null)
        else:
            u, t, ta = parts[:3]
            delta = ta - t
            if self.mode == "region":
                if mask is None:
                    raise ModelError("region audio guidance needs the speakers' mask M", "pass `mask`, or use mode global")
                delta = mask.to(delta.dtype) * delta
            eps = u + self.text_scale * (t - u) + self.audio_scale * delta
        if self.identity:
            eps = eps + (self.id_scale - 1.0) * (parts[self.conditional_row] - parts[-1])
        return eps


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
    identity: Optional[list] = None,
    router_mode: str = "off",
    router_threshold: float = 0.5,
    null_audio: Optional[torch.Tensor] = None,
    positions: Optional[tuple] = None,
    image_embeds: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """One guided prediction for a single sample (batch 1), every pass in one forward.

    In router predict mode the full conditional row's prediction routes every row, so all passes
    of a step share one mask. With `null_audio` (1, S, F, K, D), rows without audio get those
    tokens instead of a zero gate, and no L-RoPE `positions` (1, N), (1, S*K): the release runs its
    null audio as one unbound person, which equal tokens without rotation reproduce exactly.
    """
    rows = guidance.rows()
    p = len(rows)
    dev = latents.device
    embeds = torch.cat([negative_embeds if r.negative else prompt_embeds for r in rows])
    lens = None
    if text_lens is not None:
        neg = negative_lens if negative_lens is not None else text_lens
        lens = torch.cat([neg if r.negative else text_lens for r in rows])
    audio_gate = torch.tensor([float(r.audio) for r in rows], device=dev)
    identity_gate = torch.tensor([float(r.identity) for r in rows], device=dev)
    tokens = None if audio is None else audio.expand(p, *audio.shape[1:])
    if null_audio is not None and audio is not None:
        tokens = torch.cat([audio if r.audio else null_audio.to(audio.dtype) for r in rows])
        if positions is not None:  # position 0 everywhere: no rotation in the null-audio rows
            positions = tuple(pos.to(dev).expand(p, -1) * audio_gate[:, None] for pos in positions)
        audio_gate = None
    elif positions is not None:
        positions = tuple(pos.to(dev).expand(p, -1) for pos in positions)
    eps = model(
        latents.expand(p, *latents.shape[1:]),
        timestep.expand(p),
        embeds,
        audio=tokens,
        route=None if route is None else route.expand(p, *route.shape[1:]),
        audio_gate=audio_gate if audio is not None else None,
        text_lens=lens,
        token_groups=token_groups,
        capture_layers=capture_layers,
        router_mode=router_mode,
        identity=identity,
        identity_gate=identity_gate,
        router_row=guidance.conditional_row if router_mode == "predict" else None,
        router_threshold=router_threshold,
        positions=positions,
        image_embeds=None if image_embeds is None else image_embeds.expand(p, *image_embeds.shape[1:]),
    )
    return guidance.combine(list(eps.float().chunk(p)), mask)
