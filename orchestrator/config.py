"""The one configuration module: `render:` in the script (and its CLI overrides).

Each backend's own settings live under its registry name (`render.cosyvoice`, `render.avdit`); the
run context turns them into the backend's explicit constructor arguments.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import Field

from orchestrator.schema.base import Strict


class LLMConfig(Strict):
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    max_calls: int = 6
    max_tokens: int = 200_000
    price_per_1k_tokens: Optional[float] = None


class CosyVoiceConfig(Strict):
    repo: Optional[Path] = None
    model_dir: Optional[Path] = None


class AvditConfig(Strict):
    model_dir: Optional[Path] = None  # Wan diffusers folder (transformer, vae, text_encoder)
    wav2vec_dir: Optional[Path] = None
    adapter: Optional[Path] = None  # audio cross-attention weights (safetensors)
    steps: int = 30
    text_scale: float = 5.0
    audio_scale: float = 4.0
    tiny: bool = False  # random tiny weights, for tests and smoke runs only


class RenderConfig(Strict):
    planner: str = "rules"
    speech: str = "piper"
    video: str = "animatic"
    evaluators: list[str] = Field(
        default_factory=lambda: ["lipsync", "binding", "speaker_similarity", "intelligibility", "identity"]
    )
    width: int = Field(854, ge=64, le=1920)
    height: int = Field(480, ge=64, le=1080)
    fps: int = 25
    sample_rate: int = 24000
    max_attempts: int = Field(3, ge=1, le=10)
    seed: int = 0
    crossfade: float = Field(0.0, ge=0.0, le=1.0)
    subtitles: bool = False
    lower_thirds: bool = False
    loudness_lufs: float = -16.0
    llm: LLMConfig = Field(default_factory=LLMConfig)
    cosyvoice: CosyVoiceConfig = Field(default_factory=CosyVoiceConfig)
    avdit: AvditConfig = Field(default_factory=AvditConfig)
