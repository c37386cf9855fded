"""Speech features for the video model: wav2vec2 hidden states windowed per Wan latent frame.

Wan's VAE compresses time 4x after the first frame: latent frame 0 is video frame 0, latent frame
i >= 1 covers video frames 4i-3 .. 4i. Each latent frame gets the features of its own video frames
plus `context` frames either side (lips move before the sound), projected to `tokens` context tokens.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

WAV2VEC_RATE = 16000
TEMPORAL_FACTOR = 4  # Wan VAE: 4 video frames per latent frame after the first


def latent_frames(num_frames: int) -> int:
    """Latent frames for `num_frames` video frames (which must be 4k+1)."""
    if num_frames < 1 or (num_frames - 1) % TEMPORAL_FACTOR:
        raise ValueError(f"num_frames={num_frames} must be 4k+1 (Wan's VAE groups 4 frames per latent)")
    return (num_frames - 1) // TEMPORAL_FACTOR + 1


def video_frames_for(seconds: float, fps: int) -> int:
    """The smallest 4k+1 frame count that covers `seconds` at `fps`."""
    n = max(1, int(round(seconds * fps)))
    return ((n - 1 + TEMPORAL_FACTOR - 1) // TEMPORAL_FACTOR) * TEMPORAL_FACTOR + 1


def window_per_latent_frame(feats: torch.Tensor, context: int) -> torch.Tensor:
    """(B, F_video, ...) per-video-frame features -> (B, F_latent, 4 + 2*context, ...).

    Frame 0 is repeated 3 times in front so every latent frame owns exactly 4 video frames, and
    the ends are edge-padded by `context` frames.
    """
    b, n = feats.shape[:2]
    lat = latent_frames(n)
    rest = feats.shape[2:]
    flat = feats.reshape(b, n, -1)
    front = flat[:, :1].expand(b, TEMPORAL_FACTOR - 1 + context, -1)
    back = flat[:, -1:].expand(b, context, -1)
    padded = torch.cat([front, flat, back], dim=1)  # (B, 3 + n + 2c, D)
    size = TEMPORAL_FACTOR + 2 * context
    win = padded.unfold(1, size, TEMPORAL_FACTOR)  # (B, lat, D, size)
    win = win[:, :lat].permute(0, 1, 3, 2)
    return win.reshape(b, lat, size, *rest)


class FrozenWav2Vec(nn.Module):
    """Base of the audio encoders: `self.wav2vec` stays frozen in eval mode whatever `train` says
    (in train mode its layerdrop skips layers at random)."""

    def train(self, mode: bool = True):
        super().train(mode)
        self.wav2vec.eval()
        return self


class AudioEncoder(FrozenWav2Vec):
    """wav2vec2 (frozen) -> learned mix of all hidden layers -> windows -> K tokens per latent frame.

    `forward(wav, num_frames, fps)` takes (B, T) 16 kHz mono waveforms and returns
    (B, F_latent, tokens, dim) audio context tokens; it is `from_features(hidden_states(...))`, so the frozen
    wav2vec2 features can be computed once and cached.
    """

    def __init__(self, wav2vec: nn.Module, dim: int, tokens: int = 4, context: int = 2):
        super().__init__()
        self.wav2vec = wav2vec.eval().requires_grad_(False)
        cfg = wav2vec.config
        self.layers = cfg.num_hidden_layers + 1  # embeddings output + every transformer layer
        self.tokens, self.context, self.dim = tokens, context, dim
        self.layer_logits = nn.Parameter(torch.zeros(self.layers))
        window = TEMPORAL_FACTOR + 2 * context
        self.proj = nn.Sequential(
            nn.Linear(window * cfg.hidden_size, 2 * dim),
            nn.GELU(),
            nn.Linear(2 * dim, tokens * dim),
        )
        self.norm = nn.LayerNorm(dim)

    @torch.no_grad()
    def hidden_states(self, wav: torch.Tensor, num_frames: int, fps: float) -> torch.Tensor:
        """(B, T) wav -> (B, num_frames, layers, hidden) wav2vec2 features at the video frame rate."""
        t = wav.shape[-1]
        # Pad to whole video frames so resampling to the frame grid is exact in length.
        want = int(round(num_frames * WAV2VEC_RATE / fps))
        if t < want:
            wav = F.pad(wav, (0, want - t))
        wav = wav[..., :want]
        wav = (wav - wav.mean(-1, keepdim=True)) / (wav.std(-1, keepdim=True) + 1e-5)
        p = next(self.wav2vec.parameters())
        out = self.wav2vec(wav.to(p.device, p.dtype), output_hidden_states=True)
        hs = torch.stack(out.hidden_states, dim=2)  # (B, T_a, L, H)
        b, ta, L, h = hs.shape
        hs = F.interpolate(hs.reshape(b, ta, L * h).transpose(1, 2), size=num_frames, mode="linear", align_corners=False)
        return hs.transpose(1, 2).reshape(b, num_frames, L, h)

    def forward(self, wav: torch.Tensor, num_frames: int, fps: float) -> torch.Tensor:
        return self.from_features(self.hidden_states(wav, num_frames, fps))

    def from_features(self, hs: torch.Tensor) -> torch.Tensor:
        """(B, F_video, layers, hidden) features from `hidden_states` (cacheable) -> (B, F_latent, K, dim)."""
        w = torch.softmax(self.layer_logits, dim=0).to(hs.dtype)
        mixed = (hs * w[None, None, :, None]).sum(2)  # (B, F_video, H)
        win = window_per_latent_frame(mixed, self.context)  # (B, F_lat, window, H)
        b, lat = win.shape[:2]
        tok = self.proj(win.reshape(b, lat, -1).to(self.proj[0].weight.dtype))
        return self.norm(tok.reshape(b, lat, self.tokens, self.dim))
