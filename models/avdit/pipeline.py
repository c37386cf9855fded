"""The audio-driven, character-customised Wan pipeline, in the style of diffusers' `WanPipeline`.

`AvditPipeline(...)(prompt_embeds=..., audio=...)` denoises with diffusers' real
`FlowMatchEulerDiscreteScheduler`, routes each speech stream into its character's router mask,
refines the masks from trigger-word attention as denoising proceeds (or lets the learned router
predict them inside every forward), guides every step with one batched forward, and decodes with `AutoencoderKLWan`. Prompts can be given as embeddings (tests) or
as text through a local UMT5 encoder (`UMT5Prompt`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from models.avdit.adapter import TEXT_CONTEXT, AvditModel
from models.avdit.audio import AudioEncoder, latent_frames
from models.avdit.guidance import Guidance, guided_noise
from models.avdit.lora import load_character, use_characters
from models.avdit.router import box_labels, labels_to_route, masks_from_attention, uniform_shares
from models.errors import ModelError
from models.loading import load_state_dict

MASK_SOURCES = ("boxes", "attention", "router")


class UMT5Prompt:
    """Text -> (embeds (B, 512, D), lens (B,), token offsets) exactly as `WanPipeline` pads them."""

    def __init__(self, tokenizer, text_encoder, max_length: int = TEXT_CONTEXT):
        self.tokenizer, self.text_encoder, self.max_length = tokenizer, text_encoder, max_length

    @torch.no_grad()
    def __call__(self, prompts: Sequence[str]):
        enc = self.tokenizer(
            list(prompts), padding="max_length", max_length=self.max_length, truncation=True,
            add_special_tokens=True, return_attention_mask=True, return_offsets_mapping=True, return_tensors="pt",
        )
        lens = enc.attention_mask.gt(0).sum(1)
        dev = next(self.text_encoder.parameters()).device
        hidden = self.text_encoder(enc.input_ids.to(dev), enc.attention_mask.to(dev)).last_hidden_state
        # Like WanPipeline: keep the real tokens, zero the rest (the transformer sees the zeros).
        keep = torch.arange(self.max_length, device=dev)[None] < lens.to(dev)[:, None]
        embeds = hidden * keep[..., None].to(hidden.dtype)
        return embeds, lens, [[tuple(o) for o in row.tolist()] for row in enc.offset_mapping]


@dataclass
class AvditOutput:
    video: np.ndarray  # (F, H, W, 3) uint8
    labels: torch.Tensor  # (F_lat, Ht, Wt) token labels: 0 background, k = k-th character


class AvditPipeline:
    """Wan T2V + audio cross-attention + router masks + audio / identity guidance."""

    def __init__(self, model: AvditModel, vae, scheduler, prompt_encoder=None):
        self.model, self.vae, self.scheduler, self.prompt_encoder = model, vae, scheduler, prompt_encoder

    @classmethod
    def from_local(cls, model_dir, wav2vec_dir, adapter=None, characters: Optional[dict] = None,
                   dtype=torch.bfloat16, device="cuda", tokens: int = 4):
        """Load a diffusers Wan folder (transformer, vae, text_encoder, tokenizer), wav2vec2, the
        audio adapter (safetensors; its router head too, if it was trained with one) and
        `characters` {name: character file} from local paths only."""
        from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
        from transformers import AutoTokenizer, UMT5EncoderModel, Wav2Vec2Model

        from models.loading import from_pretrained_local, local_path

        root = local_path(model_dir, "avdit.model_dir", want_dir=True)
        transformer = from_pretrained_local(WanTransformer3DModel, root / "transformer", "avdit.model_dir", torch_dtype=dtype)
        vae = from_pretrained_local(AutoencoderKLWan, root / "vae", "avdit.model_dir", torch_dtype=torch.float32)
        text_encoder = from_pretrained_local(UMT5EncoderModel, root / "text_encoder", "avdit.model_dir", torch_dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(local_path(root / "tokenizer", "avdit.model_dir", True)), local_files_only=True)
        wav2vec = from_pretrained_local(Wav2Vec2Model, wav2vec_dir, "avdit.wav2vec_dir")
        dim = transformer.config.num_attention_heads * transformer.config.attention_head_dim
        model = build_with_adapter(transformer, AudioEncoder(wav2vec, dim, tokens), adapter)
        model.to(device, dtype)
        model.audio_encoder.wav2vec.float()
        scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)  # Wan 2.1's flow shift at 480p
        pipe = cls(model, vae.to(device), scheduler, UMT5Prompt(tokenizer, text_encoder.to(device)))
        for name, path in (characters or {}).items():
            pipe.load_character(name, path)
        return pipe

    @property
    def device(self) -> torch.device:
        return next(self.model.transformer.parameters()).device

    def load_character(self, name: str, path) -> None:
        """Load character `name`'s file (LoRA, plus learned audio tokens after stage d)."""
        load_character(self.model, path, name)

    def use_characters(self, names: Sequence[str]) -> None:
        """Activate the LoRAs of `names` that are loaded (none loaded: the base model)."""
        tr = self.model.transformer
        loaded = set(getattr(tr, "peft_config", {}) or {})
        active = [n for n in names if n in loaded]
        if active:
            tr.enable_adapters()
            use_characters(tr, active)
        elif loaded:
            tr.disable_adapters()

    def route_and_mask(self, labels: torch.Tensor, speaking: torch.Tensor):
        """Router (1, S, N) from token labels, and M (1, 1, F, H, W) over latents: speakers' tokens."""
        s = speaking.shape[0]
        route = labels_to_route(labels, s)[None]
        speak = (route[0] * speaking.float()[:, None]).amax(0).view(labels.shape) if s else labels.float() * 0
        pt, ph, pw = self.model.transformer.config.patch_size
        m = speak.repeat_interleave(pt, 0).repeat_interleave(ph, 1).repeat_interleave(pw, 2)
        return route.to(self.device), m[None, None].to(self.device)

    def refine_labels(self, maps: torch.Tensor, grid, baseline: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
        """Labels from captured trigger attention; a character who wins no token keeps its boxes."""
        s = maps.shape[0]
        labels = masks_from_attention(maps.float().cpu().view(s, *grid), baseline)
        for k in range(1, s + 1):
            if not (labels == k).any():
                labels = torch.where((fallback == k) & (labels == 0), fallback, labels)
        return labels

    def check(self, mask_source: str, guidance: Guidance, characters: Optional[Sequence[str]], token_groups, streams: int):
        """Refuse settings this model cannot honour, with the fix."""
        if mask_source not in MASK_SOURCES:
            raise ModelError(f"mask_source {mask_source!r} is not one of {MASK_SOURCES}", f"use one of {', '.join(MASK_SOURCES)}")
        if mask_source == "router" and self.model.router is None:
            raise ModelError("mask_source router needs an adapter trained with a router head",
                             "train stage b with --router, or use mask_source attention or boxes")
        if mask_source == "router" and not token_groups:
            raise ModelError("mask_source router needs each character's trigger tokens", "pass token_groups")
        if guidance.identity and not any(c in self.model.identity_tokens for c in characters or []):
            raise ModelError("identity guidance needs a character with learned audio tokens, and none is loaded",
                             "load the character files written by compose train --stage d, or set id_scale to 1")
        if characters is not None and len(characters) != streams:
            raise ModelError(f"{len(characters)} character names for {streams} speech streams", "name every stream's character")

    @torch.no_grad()
    def __call__(
        self,
        prompt_embeds: torch.Tensor,
        negative_prompt_embeds: torch.Tensor,
        audio: torch.Tensor,
        boxes: torch.Tensor,
        num_frames: int,
        height: int,
        width: int,
        fps: float = 25.0,
        text_lens: Optional[torch.Tensor] = None,
        negative_lens: Optional[torch.Tensor] = None,
        token_groups: Optional[list] = None,
        speaking: Optional[torch.Tensor] = None,
        steps: int = 30,
        guidance: Guidance = Guidance(),
        mask_source: str = "attention",
        characters: Optional[Sequence[str]] = None,
        router_threshold: float = 0.5,
        capture_layers: Optional[set] = None,
        generator: Optional[torch.Generator] = None,
        output_type: str = "np",
    ) -> AvditOutput:
        """Generate one clip. `audio` is (S, T) 16 kHz speech, one stream per character, in the
        order of `boxes` (S, 4), `token_groups` and `characters`; `speaking` (S,) marks streams with
        speech. `mask_source`: boxes (fixed), attention (trigger-word attention, refined each step)
        or router (the learned head predicts the masks inside every forward)."""
        s = audio.shape[0]
        self.check(mask_source, guidance, characters, token_groups, s)
        dev, dtype = self.device, next(self.model.transformer.parameters()).dtype
        speaking = speaking if speaking is not None else torch.ones(s, dtype=torch.bool)
        vcfg = self.vae.config
        lat_shape = (1, self.model.transformer.config.in_channels, latent_frames(num_frames),
                     height // vcfg.scale_factor_spatial, width // vcfg.scale_factor_spatial)
        latents = torch.randn(lat_shape, generator=generator, dtype=torch.float32).to(dev)
        grid = self.model.token_grid(latents)
        labels = fallback = box_labels(boxes, grid)
        route, mask = self.route_and_mask(labels, speaking)
        tokens = self.model.audio_encoder(audio.to(dev), num_frames, fps)[None].to(dtype)  # (1, S, F, K, D)
        if capture_layers is None:  # the middle half of the blocks carries the most spatial attention
            n = self.model.num_layers
            capture_layers = set(range(n // 4, max(n // 4 + 1, 3 * n // 4)))
        capture = capture_layers if mask_source == "attention" and token_groups else None
        baseline = uniform_shares(token_groups, int(text_lens[0])) if capture and text_lens is not None else None
        router_mode = "predict" if mask_source == "router" else "off"
        cond = guidance.conditional_row
        self.scheduler.set_timesteps(steps, device=dev)
        for t in self.scheduler.timesteps:
            eps = guided_noise(
                self.model, latents.to(dtype), t.expand(1), prompt_embeds.to(dev, dtype), negative_prompt_embeds.to(dev, dtype),
                guidance, tokens, route, mask, text_lens, negative_lens, token_groups, capture,
                identity=list(characters) if characters is not None else None,
                router_mode=router_mode, router_threshold=router_threshold,
            )
            latents = self.scheduler.step(eps, t, latents, return_dict=False)[0]
            maps = self.model.captured_maps()
            if capture and maps is not None:
                if baseline is None:
                    raise ModelError("attention masks need the prompt's real length", "pass text_lens")
                labels = self.refine_labels(maps[cond], grid, baseline, fallback)
                route, mask = self.route_and_mask(labels, speaking)
            if router_mode == "predict":  # M for the next step from this step's routing
                labels = self.model.state.router_labels[cond].view(grid).cpu()
                route, mask = self.route_and_mask(labels, speaking)
        if output_type == "latent":
            return AvditOutput(video=latents.cpu().numpy(), labels=labels)
        return AvditOutput(video=self.decode(latents), labels=labels)

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Latents -> (F, H, W, 3) uint8, undoing Wan's latent normalisation as WanPipeline does."""
        cfg = self.vae.config
        mean = torch.tensor(cfg.latents_mean).view(1, -1, 1, 1, 1)
        std = torch.tensor(cfg.latents_std).view(1, -1, 1, 1, 1)
        vdev = next(self.vae.parameters()).device
        z = latents.float().to(vdev) * std.to(vdev) + mean.to(vdev)
        video = self.vae.decode(z.to(self.vae.dtype), return_dict=False)[0]  # (1, 3, F, H, W) in [-1, 1]
        video = ((video[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return video.permute(1, 2, 3, 0).cpu().numpy()


def build_with_adapter(transformer, audio_encoder, adapter=None) -> AvditModel:
    """An `AvditModel` shaped like the adapter file (router head if it has one), weights loaded."""
    if adapter is None:
        return AvditModel(transformer, audio_encoder)
    sd = load_state_dict(adapter, "avdit.adapter")
    model = AvditModel(transformer, audio_encoder, router=any(k.startswith("router.") for k in sd))
    model.load_adapter_state_dict(sd)
    return model
