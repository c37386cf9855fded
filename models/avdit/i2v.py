"""Image-to-video generation with a released audio adapter (MultiTalk / InfiniteTalk formats).

The first frame is given (the animatic's staged frame of the shot: each character from the cast's
images, placed by the layout), so identity comes from the cast and the router knows where each
character is. Latents are 36 channels on Wan2.1-I2V-14B: noise (16) + mask (4: the first frame is
known) + the VAE-encoded first frame followed by zeros (16), as in diffusers' `WanImageToVideoPipeline`;
the CLIP image tokens of the first frame join the text context.

Binding: two streams use L-RoPE positions taken from our router labels (the release's scheme);
one stream reaches every token (the release); three or more go through our route masks on the
audio output, each speaking stream only into its character's tokens (bystanders get none).

Shots longer than one window stream InfiniteTalk-style: each next window is conditioned on the
last `motion_frames` generated frames, VAE-encoded and written over its first latent frames at
every step, and its first `motion_frames` output frames (a re-generation of those) are dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from models.avdit.audio import TEMPORAL_FACTOR, latent_frames
from models.avdit.guidance import Guidance, guided_noise
from models.avdit.multitalk import lrope_positions
from models.avdit.pipeline import AvditOutput, AvditPipeline
from models.avdit.router import labels_to_route
from models.errors import ModelError


@dataclass
class Streaming:
    """InfiniteTalk's long-shot settings: frames per window and motion frames carried over (4n+1)."""

    window: int = 81
    motion_frames: int = 9

    def __post_init__(self):
        for name in ("window", "motion_frames"):
            v = getattr(self, name)
            if v < 1 or (v - 1) % TEMPORAL_FACTOR:
                raise ModelError(f"streaming {name}={v} is not 4n+1", "use e.g. window 81, motion_frames 9")
        if self.motion_frames >= self.window:
            raise ModelError(f"motion_frames {self.motion_frames} must be fewer than window {self.window}",
                             "use e.g. window 81, motion_frames 9")

    def stitch(self, windows: list[np.ndarray], num_frames: int) -> np.ndarray:
        """The shot from its windows' frames: every window after the first drops its first
        `motion_frames` (the carried-over frames it was conditioned on), cut to `num_frames`."""
        kept = [w if i == 0 else w[self.motion_frames:] for i, w in enumerate(windows)]
        return np.concatenate(kept)[:num_frames]

    def starts(self, num_frames: int) -> list[int]:
        """First shot frame of each window; windows overlap by `motion_frames`."""
        starts, step = [0], self.window - self.motion_frames
        while starts[-1] + self.window < num_frames:
            starts.append(starts[-1] + step)
        return starts


def stream_blocks(model, device) -> None:
    """`offload: true`: Wan's blocks stay in CPU memory and stream to `device` one at a time (diffusers'
    group offload); the audio layers and the audio encoder, small and used every step, stay on `device`."""
    model.transformer.enable_group_offload(torch.device(device), offload_device=torch.device("cpu"),
                                           offload_type="block_level", num_blocks_per_group=1)
    model.audio_layers.to(device)
    if model.audio_encoder is not None:
        model.audio_encoder.to(device)


class I2VPipeline(AvditPipeline):
    """Wan I2V + a released audio adapter, bound by router labels, guided the MultiTalk way."""

    def __init__(self, model, vae, scheduler, prompt_encoder, image_encoder, image_size: int = 224):
        super().__init__(model, vae, scheduler, prompt_encoder)
        self.image_encoder, self.image_size = image_encoder, image_size

    @classmethod
    def from_local(cls, model_dir, wav2vec_dir, adapter, fmt: str, shift: float = 7.0, offload: bool = False,
                   lora=None, lora_scale: float = 1.0, dtype=torch.bfloat16, device="cuda"):
        """Load Wan2.1-I2V (diffusers folder), wav2vec2 and a MultiTalk/InfiniteTalk adapter from local
        paths, after checking them from file headers (the `compose doctor` checks); fuse `lora` (a
        step-distillation LoRA) when given. `offload` keeps the text and image encoders on the CPU
        (they run once per shot) and streams Wan's blocks from CPU memory (diffusers' group offload)."""
        from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
        from transformers import AutoTokenizer, CLIPVisionModel, UMT5EncoderModel, Wav2Vec2Model

        from models.avdit.doctor import check_paths
        from models.avdit.multitalk import build_release_model
        from models.avdit.pipeline import UMT5Prompt
        from models.loading import from_pretrained_local, load_state_dict, local_path

        problems = check_paths(local_path(model_dir, "avdit.model_dir", True), local_path(wav2vec_dir, "avdit.wav2vec_dir", True),
                               local_path(adapter, "avdit.adapter"))
        if problems:
            raise ModelError(f"the {fmt} weights are not usable: " + "; ".join(problems[:8]),
                             "lay the folders out as README (Released weights) shows; `compose doctor WEIGHTS_DIR` lists every problem")
        root = local_path(model_dir, "avdit.model_dir", want_dir=True)
        field = "avdit.model_dir"
        transformer = from_pretrained_local(WanTransformer3DModel, root / "transformer", field, torch_dtype=dtype)
        vae = from_pretrained_local(AutoencoderKLWan, root / "vae", field, torch_dtype=torch.float32)
        text_encoder = from_pretrained_local(UMT5EncoderModel, root / "text_encoder", field, torch_dtype=dtype)
        image_encoder = from_pretrained_local(CLIPVisionModel, root / "image_encoder", field, torch_dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(root / "tokenizer"), local_files_only=True)
        wav2vec = from_pretrained_local(Wav2Vec2Model, wav2vec_dir, "avdit.wav2vec_dir")
        if lora is not None:
            from models.avdit.lora import fuse_speed_lora

            fuse_speed_lora(transformer, local_path(lora, "avdit.lora"), lora_scale)
        model = build_release_model(transformer, wav2vec, load_state_dict(adapter, "avdit.adapter"), str(adapter))
        model.to(dtype)
        if offload:
            stream_blocks(model, device)
        else:
            model.to(device)
        model.audio_encoder.wav2vec.float()
        helpers = "cpu" if offload else device
        return cls(model, vae.to(device), FlowMatchEulerDiscreteScheduler(shift=shift),
                   UMT5Prompt(tokenizer, text_encoder.to(helpers)), image_encoder.to(helpers),
                   image_size=image_encoder.config.image_size)

    @property
    def device(self) -> torch.device:
        """Where generation runs: the audio layers' device (Wan's blocks may be offloaded to the CPU)."""
        return next(self.model.audio_layers.parameters()).device

    @torch.no_grad()
    def encode_image(self, frame: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 -> CLIP image tokens (1, T, D): the penultimate layer, as diffusers' I2V does."""
        p = next(self.image_encoder.parameters())
        x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0
        x = torch.nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False)
        mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)  # CLIP's normalisation
        std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
        out = self.image_encoder(((x - mean) / std).to(p.device, p.dtype), output_hidden_states=True)
        return out.hidden_states[-2]

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """(1, 3, F, H, W) in [-1, 1] -> normalised latents (1, z, F_lat, h, w), the posterior mode."""
        cfg, p = self.vae.config, next(self.vae.parameters())
        z = self.vae.encode(frames.to(p.device, p.dtype)).latent_dist.mode().float()
        mean = torch.tensor(cfg.latents_mean).view(1, -1, 1, 1, 1).to(z.device)
        std = torch.tensor(cfg.latents_std).view(1, -1, 1, 1, 1).to(z.device)
        return (z - mean) / std

    def condition(self, first: torch.Tensor, num_frames: int) -> torch.Tensor:
        """(1, 3, H, W) in [-1, 1] -> (1, 4 + z, F_lat, h, w): the known-frame mask and the VAE
        latents of the first frame followed by zero frames."""
        _, _, height, width = first.shape
        video = torch.cat([first[:, :, None], first.new_zeros(1, 3, num_frames - 1, height, width)], 2)
        lat = self.encode_video(video)
        lat_h, lat_w = lat.shape[-2:]
        mask = torch.zeros(1, 1, num_frames + TEMPORAL_FACTOR - 1, lat_h, lat_w, device=lat.device)
        mask[:, :, :TEMPORAL_FACTOR] = 1  # frame 0, repeated 4 times like the VAE's first latent frame
        mask = mask.view(1, latent_frames(num_frames), TEMPORAL_FACTOR, lat_h, lat_w).transpose(1, 2)
        return torch.cat([mask, lat], 1)

    def binding(self, labels: torch.Tensor, speaking: torch.Tensor, tokens: int):
        """(route, positions) for `labels` (F, H, W): L-RoPE for two streams, nothing for one (the
        audio reaches every token), route masks for speaking streams otherwise."""
        s = speaking.shape[0]
        if s == 1:
            return None, None
        if s == 2:
            q, k = lrope_positions(labels, tokens)
            return None, (q[None].to(self.device), k[None].to(self.device))
        route = labels_to_route(labels, s) * speaking.float()[:, None]
        return route[None].to(self.device), None

    @torch.no_grad()
    def __call__(
        self,
        prompt_embeds: torch.Tensor,
        negative_prompt_embeds: torch.Tensor,
        audio: torch.Tensor,
        first_frame: np.ndarray,
        labels: torch.Tensor,
        num_frames: int,
        fps: float = 25.0,
        speaking: Optional[torch.Tensor] = None,
        steps: int = 40,
        guidance: Guidance = Guidance("multitalk", 5.0, 4.0),
        streaming: Streaming = Streaming(),
        generator: Optional[torch.Generator] = None,
    ) -> AvditOutput:
        """Generate one shot from `first_frame` (H, W, 3) uint8 (H, W multiples of 16). `audio` (S, T)
        is one 16 kHz stream per character, `labels` (Ht, Wt) the token grid's router labels
        (0 background, k the k-th stream's character)."""
        if guidance.mode != "multitalk":
            raise ModelError(f"guidance {guidance.mode!r} does not fit a released adapter", "use guidance: multitalk")
        dev, dtype = self.device, next(self.model.transformer.parameters()).dtype
        s = audio.shape[0]
        speaking = speaking if speaking is not None else torch.ones(s, dtype=torch.bool)
        enc = self.model.audio_encoder
        hs = enc.hidden_states(audio.to(dev), num_frames, fps)  # the whole shot, windows index into it
        null = enc.null_tokens(s, min(num_frames, streaming.window))[None].to(dtype)
        image = self.encode_image(first_frame).to(dev, dtype)
        first = torch.from_numpy(first_frame).permute(2, 0, 1)[None].float().to(dev) / 127.5 - 1.0
        pieces, motion = [], None
        for start in streaming.starts(num_frames):
            n = min(streaming.window, num_frames) if start == 0 else streaming.window
            cond = self.condition(first, n).to(dtype)
            grid_labels = labels[None].expand(latent_frames(n), -1, -1)
            route, positions = self.binding(grid_labels, speaking, enc.proj.tokens)
            tokens = enc.from_features(hs, start, n)[None].to(dtype)
            latents = self.denoise(cond, tokens, null[:, :, :tokens.shape[2]], route, positions, image,
                                   prompt_embeds.to(dev, dtype), negative_prompt_embeds.to(dev, dtype),
                                   steps, guidance, motion, generator)
            video = self.decode(latents)
            pieces.append(video)
            frames = torch.from_numpy(video[-streaming.motion_frames:]).permute(3, 0, 1, 2)[None].float()
            motion = self.encode_video(frames.to(dev) / 127.5 - 1.0)
        return AvditOutput(video=streaming.stitch(pieces, num_frames), labels=labels[None].expand(latent_frames(num_frames), -1, -1))

    def denoise(self, cond, tokens, null, route, positions, image, embeds, negative, steps, guidance, motion,
                generator) -> torch.Tensor:
        """One window's flow-matching loop; `motion` latents (1, z, T_m, h, w) are held fixed."""
        dev, dtype = cond.device, cond.dtype
        z = self.model.transformer.config.out_channels
        shape = (1, z, *cond.shape[2:])
        latents = torch.randn(shape, generator=generator, dtype=torch.float32).to(dev)
        self.scheduler.set_timesteps(steps, device=dev)
        for t in self.scheduler.timesteps:
            if motion is not None:
                latents[:, :, :motion.shape[2]] = motion
            x = torch.cat([latents.to(dtype), cond], 1)
            eps = guided_noise(self.model, x, t.expand(1), embeds, negative, guidance, tokens, route,
                               null_audio=null, positions=positions, image_embeds=image)
            latents = self.scheduler.step(eps, t, latents, return_dict=False)[0]
        if motion is not None:
            latents[:, :, :motion.shape[2]] = motion
        return latents
