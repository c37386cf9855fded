"""Life: seeded blinks, small head motion, listener nods at line ends, and camera moves.

Everything here is a per-frame track computed once per shot from the seed, so the frame loop
only looks numbers up, and the same seed always gives the same film.
"""
from __future__ import annotations

import zlib

import cv2
import numpy as np

from tools.base import ShotAudio

BLINK_SHAPE = (0.5, 1.0, 1.0, 0.6, 0.2)  # lid closure over five frames
NOD_SECONDS = 0.7


def _rng(seed: int, character: str, what: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(f"{character}|{what}".encode())])


def blink_track(seed: int, character: str, frames: int, fps: int) -> np.ndarray:
    """Lid closure (0 open .. 1 shut) per frame: a blink every 2.5-5.5 s at seeded times."""
    rng = _rng(seed, character, "blink")
    track = np.zeros(frames, np.float32)
    t = rng.uniform(0.4, 2.5)
    while t * fps < frames:
        f = int(t * fps)
        for i, c in enumerate(BLINK_SHAPE):
            if f + i < frames:
                track[f + i] = c
        t += rng.uniform(2.5, 5.5)
    return track


def head_track(seed: int, character: str, audio: ShotAudio, frames: int, fps: int,
               face_h: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer (dx, dy) head offsets per frame: slow seeded sway plus nods after others' lines."""
    rng = _rng(seed, character, "head")
    t = np.arange(frames) / fps
    dx = np.zeros(frames, np.float64)
    dy = np.zeros(frames, np.float64)
    for amp, axis in ((0.025, dx), (0.012, dy)):
        for _ in range(2):
            period, phase = rng.uniform(3.0, 7.0), rng.uniform(0, 2 * np.pi)
            axis += amp * face_h / 2 * np.sin(2 * np.pi * t / period + phase)
    for line in audio.lines:
        if line.speaker == character:
            continue
        k = (t - line.end) / NOD_SECONDS
        nod = (k >= 0) & (k < 1)
        dy[nod] += 0.06 * face_h * np.sin(np.pi * k[nod])
    return np.round(dx).astype(np.int32), np.round(dy).astype(np.int32)


def draw_blink(patch: np.ndarray, lid: float, low: float, closure: float) -> np.ndarray:
    """Close an eye: the skin band above the upper lid (rows 0..`lid` of the patch) stretches down
    over the eye until its edge reaches `closure` of the way to the lower lid (row `low`)."""
    h, w = patch.shape[:2]
    edge = lid + closure * (low - lid)
    if closure <= 0 or edge <= lid + 0.5:
        return patch
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Rows above the moving edge sample the band [0, lid] stretched to [0, edge]; below it, unchanged.
    map_y = np.where(gy < edge, gy * (lid / edge), gy).astype(np.float32)
    out = cv2.remap(patch, gx, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    lash = np.exp(-0.5 * ((gy - edge) / max(0.6, 0.04 * h)) ** 2)[..., None]
    out = out * (1 - 0.45 * lash)  # a dark lash line sells the closed lid
    # An almond-shaped soft edge, so the lid never shows as a rectangle.
    shape = np.zeros((h, w), np.float32)
    cv2.ellipse(shape, (w // 2, int(round((lid + low) / 2))), (max(1, w // 2 - 1), max(1, int(h / 2))),
                0, 0, 360, 1.0, -1)
    shape = cv2.GaussianBlur(shape, (0, 0), max(1.0, h / 6))[..., None]
    return (patch * (1 - shape) + out * shape).astype(np.uint8)


def camera_matrices(move: str, frames: int, width: int, height: int,
                    target: tuple[float, float]) -> list[np.ndarray] | None:
    """Per-frame 2x3 affine matrices for the move, or None for a static camera.

    Views always stay inside the frame (the zoom covers every pan), so no border is ever shown.
    """
    if move == "static" or frames == 0:
        return None
    s = np.linspace(0.0, 1.0, frames)
    ease = s * s * (3 - 2 * s)
    if move in ("push-in", "pull-out"):
        zoom = 1.0 + 0.1 * (ease if move == "push-in" else 1 - ease)
        centre_w = np.stack([width / 2 + (target[0] - width / 2) * (zoom - 1) / 0.1,
                             height / 2 + (target[1] - height / 2) * (zoom - 1) / 0.1], 1)
    else:  # pan-left / pan-right: the view slides across a fixed 8% zoom
        zoom = np.full(frames, 1.08)
        span = width * (1 - 1 / 1.08) / 2
        direction = -1.0 if move == "pan-left" else 1.0
        centre_w = np.stack([width / 2 + direction * span * (2 * ease - 1), np.full(frames, height / 2)], 1)
    mats = []
    for z, (cx, cy) in zip(zoom, centre_w):
        hw, hh = width / (2 * z), height / (2 * z)
        cx, cy = np.clip(cx, hw, width - hw), np.clip(cy, hh, height - hh)
        mats.append(np.array([[z, 0, width / 2 - z * cx], [0, z, height / 2 - z * cy]], np.float32))
    return mats


def apply_camera(frame: np.ndarray, mask: np.ndarray, boxes: np.ndarray, m: np.ndarray):
    """Move frame, mask and face boxes (K, 4) by one camera matrix."""
    h, w = mask.shape
    frame = cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
    boxes = boxes.copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]] * m[0, 0] + m[0, 2]
    boxes[:, [1, 3]] = boxes[:, [1, 3]] * m[1, 1] + m[1, 2]
    return frame, mask, boxes
