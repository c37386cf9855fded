"""Burned-in subtitles and name lower-thirds, rendered once per line and blended per frame."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from textwrap import wrap

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from orchestrator.schema.cast import Cast
from tools.base import ShotAudio

LOWER_THIRD_SECONDS = 2.5


@dataclass
class Overlay:
    """A premultiplied RGBA card placed at (x, y), shown from `start` to `end` seconds."""

    x: int
    y: int
    rgb: np.ndarray  # premultiplied, float32
    inv_alpha: np.ndarray  # (h, w, 1) float32
    start: float
    end: float


@lru_cache(maxsize=8)
def _font(size: int):
    return ImageFont.load_default(size=size)


def _card(lines: list[str], size: int, fill=(255, 255, 255), box=(0, 0, 0, 150)) -> np.ndarray:
    font = _font(size)
    pad = size // 2
    widths = [font.getbbox(t)[2] for t in lines]
    w, h = max(widths) + 2 * pad, len(lines) * int(size * 1.25) + 2 * pad
    im = Image.new("RGBA", (w, h), box)
    draw = ImageDraw.Draw(im)
    for i, t in enumerate(lines):
        draw.text((pad, pad + i * int(size * 1.25)), t, font=font, fill=fill + (255,),
                  stroke_width=max(1, size // 14), stroke_fill=(0, 0, 0, 255))
    return np.asarray(im)


def _overlay(card: np.ndarray, x: int, y: int, start: float, end: float) -> Overlay:
    a = card[..., 3:4].astype(np.float32) / 255.0
    return Overlay(x, y, card[..., :3].astype(np.float32) * a, 1.0 - a, start, end)


def build_overlays(audio: ShotAudio, cast: Cast, width: int, height: int,
                   subtitles: bool, lower_thirds: bool) -> list[Overlay]:
    """Cards for the shot's lines: subtitles at the bottom centre, names at the lower left."""
    out: list[Overlay] = []
    size = max(12, height // 24)
    named: set[str] = set()
    for line in audio.lines:
        if subtitles and line.text.strip():
            card = _card(wrap(line.text, max(20, width // (size // 2 + 1))), size)
            ch, cw = card.shape[:2]
            if cw <= width and ch <= height:
                out.append(_overlay(card, (width - cw) // 2, height - ch - height // 20,
                                    line.start, line.end))
        if lower_thirds and line.speaker not in named:
            named.add(line.speaker)
            try:
                name = cast.by_id(line.speaker).name
            except KeyError:
                name = line.speaker
            card = _card([name.upper()], int(size * 1.1), fill=(255, 230, 160), box=(20, 30, 60, 190))
            ch, cw = card.shape[:2]
            out.append(_overlay(card, width // 24, height - ch - height // 5, line.start,
                                line.start + LOWER_THIRD_SECONDS))
    return out


def draw_overlays(frame: np.ndarray, overlays: list[Overlay], t: float) -> None:
    """Blend the cards visible at time `t` into `frame` in place."""
    for ov in overlays:
        if ov.start <= t < ov.end:
            h, w = ov.rgb.shape[:2]
            roi = frame[ov.y:ov.y + h, ov.x:ov.x + w]
            roi[:] = (roi * ov.inv_alpha[: roi.shape[0], : roi.shape[1]]
                      + ov.rgb[: roi.shape[0], : roi.shape[1]]).astype(np.uint8)
