"""Backgrounds: the scene's image when given, else a procedural set painted from the heading.

The set depends only on the location words (seeded by a checksum of them) and the time of day,
so every shot of a location shows the same place. Closer framings crop further into the set and
blur it more, which reads as a longer lens with shallow depth of field.
"""
from __future__ import annotations

import re
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from tools.faces.portraits import load_image

HEADING_RE = re.compile(r"^\s*(INT\.?/EXT|EXT\.?/INT|I/E|INT|EXT)[.\s]*(.*?)\s*(?:[-\u2013\u2014]+\s*([^-\u2013\u2014]*))?$",
                        re.I)
# (top colour, bottom colour, light level) per time of day; colours RGB.
PALETTES = {
    "day": ((120, 180, 235), (215, 232, 245), 1.0),
    "night": ((8, 12, 35), (35, 45, 85), 0.45),
    "dusk": ((70, 60, 120), (250, 150, 90), 0.7),
    "dawn": ((150, 180, 230), (250, 200, 160), 0.8),
}
TIME_WORDS = {"night": "night", "midnight": "night", "dusk": "dusk", "evening": "dusk",
              "sunset": "dusk", "twilight": "dusk", "dawn": "dawn", "morning": "dawn",
              "sunrise": "dawn", "day": "day", "noon": "day", "afternoon": "day"}
KINDS = {
    "space": ("space", "station", "orbit", "ship", "shuttle", "spacecraft", "module", "cockpit",
              "capsule", "moon", "planet", "iss"),
    "city": ("city", "street", "road", "town", "alley", "avenue", "square", "rooftop"),
    "nature": ("forest", "park", "garden", "woods", "field", "meadow", "farm", "yard"),
    "water": ("beach", "sea", "ocean", "harbor", "harbour", "lake", "shore", "river", "dock"),
    "shelves": ("office", "lab", "laboratory", "study", "library", "classroom", "shop", "store",
                "kitchen", "bar", "cafe", "diner"),
}
# Crop zoom and blur (as a fraction of the frame height) per framing.
FRAMING_LENS = {"wide": (1.0, 0.0), "two-shot": (1.15, 0.004), "medium": (1.3, 0.007),
                "over-shoulder": (1.35, 0.008), "close-up": (1.6, 0.012)}


def parse_heading(heading: str) -> tuple[bool, str, str]:
    """(interior, location words, time of day key) from a scene heading like 'INT. LAB - NIGHT'."""
    m = HEADING_RE.match(heading or "")
    interior, location, tod = True, (heading or "").strip(), ""
    if m:
        interior = not m.group(1).upper().startswith("EXT")
        location, tod = m.group(2) or "", m.group(3) or ""
    time = next((TIME_WORDS[w] for w in re.findall(r"[a-z]+", tod.lower()) if w in TIME_WORDS), "day")
    return interior, location.strip().lower(), time


def _kind(location: str) -> str:
    words = set(re.findall(r"[a-z]+", location))
    return next((k for k, keys in KINDS.items() if words & set(keys)), "plain")


def _gradient(h: int, w: int, top, bottom) -> np.ndarray:
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    col = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    return np.repeat(col, w, axis=1)


def _stars(img: np.ndarray, rng: np.random.Generator, region: tuple[int, int, int, int], n: int):
    x0, y0, x1, y1 = region
    for _ in range(n):
        x, y = int(rng.integers(x0, max(x0 + 1, x1))), int(rng.integers(y0, max(y0 + 1, y1)))
        v = float(rng.uniform(150, 255))
        cv2.circle(img, (x, y), int(rng.integers(0, 2)), (v, v, v), -1, cv2.LINE_AA)


def _interior(h, w, kind, pal, rng) -> np.ndarray:
    top, bottom, light = pal
    wall = np.array([200, 190, 172], np.float32) * (0.55 + 0.45 * light)
    if kind == "space":
        wall = np.array([175, 182, 190], np.float32) * (0.6 + 0.4 * light)
    img = _gradient(h, w, wall * 0.8, wall)
    horizon = int(h * 0.7)
    img[horizon:] = _gradient(h - horizon, w, wall * 0.45, wall * 0.3)
    cv2.rectangle(img, (0, horizon - 6), (w, horizon), tuple(float(v) for v in wall * 0.6), -1)
    # Windows show the sky for this time of day (stars and a planet limb in space).
    n_win = 1 + int(rng.integers(0, 2))
    for i in range(n_win):
        cx = int(w * (0.2 + 0.6 * (i + rng.uniform(0.2, 0.8)) / n_win))
        ww, wh = int(w * rng.uniform(0.1, 0.16)), int(h * rng.uniform(0.22, 0.3))
        y0 = int(h * 0.18)
        sky = _gradient(wh, ww, (5, 8, 20) if kind == "space" else top,
                        (20, 25, 60) if kind == "space" else bottom)
        if kind == "space":
            _stars(sky, rng, (0, 0, ww, wh), 25)
            cv2.circle(sky, (ww // 2, int(wh * 1.6)), int(wh * 0.9), (60, 110, 190), -1, cv2.LINE_AA)
            cv2.ellipse(img, (cx, y0 + wh // 2), (ww // 2 + 8, wh // 2 + 8), 0, 0, 360,
                        tuple(float(v) for v in wall * 0.55), -1, cv2.LINE_AA)
        img[y0:y0 + wh, cx - ww // 2:cx - ww // 2 + ww] = sky[:, : max(0, min(ww, w - (cx - ww // 2)))]
        cv2.rectangle(img, (cx - ww // 2, y0), (cx + ww // 2, y0 + wh), tuple(float(v) for v in wall * 0.5), 4)
    if kind == "space":  # panel seams and handrails
        for x in range(0, w, int(w / rng.uniform(5, 8))):
            cv2.line(img, (x, 0), (x, horizon), tuple(float(v) for v in wall * 0.7), 2)
        cv2.line(img, (0, int(h * 0.62)), (w, int(h * 0.62)), (230, 200, 60), 5)
    elif kind == "shelves":
        x0 = int(w * rng.uniform(0.02, 0.1))
        for j in range(4):
            y = int(h * (0.2 + 0.12 * j))
            cv2.rectangle(img, (x0, y), (x0 + int(w * 0.22), y + 6), (110, 80, 55), -1)
            for k in range(int(rng.integers(4, 9))):
                bx = x0 + 6 + k * int(w * 0.025)
                col = tuple(float(c) for c in rng.uniform(60, 200, 3))
                cv2.rectangle(img, (bx, y - int(h * rng.uniform(0.05, 0.09))), (bx + int(w * 0.018), y), col, -1)
    else:  # a door and a picture frame
        dx = int(w * rng.uniform(0.72, 0.85))
        cv2.rectangle(img, (dx, int(h * 0.3)), (dx + int(w * 0.1), horizon), tuple(float(v) for v in wall * 0.6), -1)
        px = int(w * rng.uniform(0.05, 0.15))
        cv2.rectangle(img, (px, int(h * 0.22)), (px + int(w * 0.1), int(h * 0.36)), (120, 90, 60), 5)
    return img


def _exterior(h, w, kind, pal, rng) -> np.ndarray:
    top, bottom, light = pal
    if kind == "space":
        img = _gradient(h, w, (2, 3, 10), (10, 12, 30))
        _stars(img, rng, (0, 0, w, h), int(w * h / 2500))
        cv2.circle(img, (int(w * rng.uniform(0.2, 0.8)), int(h * 1.5)), int(h * 0.95), (50, 100, 180), -1, cv2.LINE_AA)
        return img
    img = _gradient(h, w, top, bottom)
    horizon = int(h * 0.62)
    if light < 0.5:
        _stars(img, rng, (0, 0, w, horizon), 60)
    ground = np.array([90, 120, 70] if kind == "nature" else [120, 115, 105], np.float32) * light
    if kind == "water":
        img[horizon:] = _gradient(h - horizon, w, np.array([40, 90, 140]) * light, np.array([20, 60, 100]) * light)
        img[int(h * 0.82):] = _gradient(h - int(h * 0.82), w, np.array([220, 200, 150]) * light,
                                        np.array([200, 180, 130]) * light)
        return img
    img[horizon:] = _gradient(h - horizon, w, ground, ground * 0.7)
    if kind == "city":
        x = 0
        while x < w:
            bw, bh = int(w * rng.uniform(0.06, 0.14)), int(h * rng.uniform(0.2, 0.5))
            col = np.array([70, 72, 85], np.float32) * (0.5 + 0.5 * light)
            cv2.rectangle(img, (x, horizon - bh), (x + bw, horizon), tuple(float(c) for c in col), -1)
            for wy in range(horizon - bh + 8, horizon - 8, 14):
                for wx in range(x + 5, x + bw - 6, 12):
                    if rng.random() < 0.5:
                        lit = (250, 220, 140) if light < 0.8 else (170, 190, 210)
                        cv2.rectangle(img, (wx, wy), (wx + 5, wy + 7), lit, -1)
            x += bw + int(rng.integers(0, 8))
    else:
        for _ in range(3 if kind == "plain" else 9):
            tx, tr = int(rng.uniform(0, w)), int(h * rng.uniform(0.06, 0.12))
            cv2.rectangle(img, (tx - 4, horizon - tr), (tx + 4, horizon), (80, 60, 40), -1)
            cv2.circle(img, (tx, horizon - tr - tr // 2), tr, tuple(float(c) for c in np.array([50, 110, 50]) * light), -1, cv2.LINE_AA)
    return img


@lru_cache(maxsize=16)
def procedural_set(heading: str, width: int, height: int) -> np.ndarray:
    """Paint the set for a heading at width x height (same location words: same set)."""
    interior, location, time = parse_heading(heading)
    kind = _kind(location)
    rng = np.random.default_rng(zlib.crc32(f"{interior}|{location}".encode()))
    paint = _interior if interior else _exterior
    img = paint(height, width, kind, PALETTES[time], rng)
    # A soft vignette keeps the eye on the characters.
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = ((xx / width - 0.5) ** 2 + (yy / height - 0.5) ** 2) ** 0.5
    img *= (1.0 - 0.45 * np.clip(r - 0.3, 0, 1))[..., None]
    out = np.clip(img, 0, 255).astype(np.uint8)
    out.setflags(write=False)
    return out


def _cover(img: np.ndarray, width: int, height: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = max(width / w, height / h)
    rw, rh = max(width, round(w * s)), max(height, round(h * s))
    img = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    x0, y0 = (rw - width) // 2, (rh - height) // 2
    return img[y0:y0 + height, x0:x0 + width]


def shot_background(scene_heading: str, image: Optional[Path], framing: str, lean: float,
                    width: int, height: int) -> np.ndarray:
    """The shot's background: the set cropped by the framing's lens toward `lean` (-1..1)."""
    base = _cover(load_image(image), width, height) if image else procedural_set(scene_heading, width, height)
    zoom, blur = FRAMING_LENS.get(framing, (1.0, 0.0))
    cw, ch = width / zoom, height / zoom
    cx = width / 2 + lean * (width - cw) / 2
    x0, y0 = int(round(cx - cw / 2)), int(round((height - ch) * 0.45))
    crop = base[y0:y0 + int(ch), x0:x0 + int(cw)]
    out = cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR)
    if blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur * height)
    return np.ascontiguousarray(out)
