"""The lower-face warp that moves a sprite's mouth, prepared once per staged sprite.

Human faces (a face mesh is known): the region between the lips and the chin, bounded by the mesh's
face oval, follows a jaw drop; the upper lip lifts a little; the lips spread or round with the
viseme's width; the gap between the warped inner-lip contours is darkened into a mouth cavity with
a hint of upper teeth when wide open. Nothing moves outside the face oval.
Other faces (animals, drawings): the same warp around the cast's mouth anchor (or the lower centre
of the face box), bounded by an ellipse inside the face box, with an elliptical cavity.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from tools.faces.mesh import CHIN, FACE_OVAL, LOWER_LIP_INNER, MOUTH_LEFT, MOUTH_RIGHT, UPPER_LIP_INNER

# Inner lip contours of the mesh, corner to corner (MediaPipe's lips topology).
UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
CAVITY = np.array((45, 18, 20), np.float32)
TEETH = np.float32(190)


@dataclass
class MouthRig:
    """The warp for one sprite at its staged size: rect in sprite pixels + fixed grids."""

    rect: tuple[int, int, int, int]  # x0, y0, x1, y1 in sprite pixels
    mouth: tuple[float, float]  # mouth centre within the rect
    half_width: float  # half the lip width in pixels
    jaw: float  # jaw drop in pixels at full opening
    falloff: np.ndarray  # (h, w) float32: how much of the jaw drop each pixel follows
    upper: np.ndarray  # (h, w) float32: how much each pixel follows the upper lip's lift
    spread: np.ndarray  # (h, w) float32: how much each pixel follows the lips' width change
    gx: np.ndarray
    gy: np.ndarray
    split: np.ndarray  # (n, 2) the line where the lips part, corner to corner, in the rect
    teeth: bool  # paint a hint of upper teeth (the photo's own mouth is closed)


def build_rig(rgb: np.ndarray, face: tuple[float, float, float, float], mouth: tuple[float, float],
              mesh: Optional[np.ndarray] = None) -> MouthRig:
    """Prepare the mouth warp of a sprite: face box (x, y, w, h), mouth centre and, for a human
    face, the mesh's (468, 2) points, all in sprite pixels."""
    x, y, w, h = face
    H, W = rgb.shape[:2]
    mx, my = mouth
    if mesh is not None:
        half = float(np.linalg.norm(mesh[MOUTH_RIGHT] - mesh[MOUTH_LEFT])) / 2
        chin = float(mesh[CHIN, 1])
        jaw = 0.45 * max(chin - my, 0.08 * h)
        gap = float(mesh[LOWER_LIP_INNER, 1] - mesh[UPPER_LIP_INNER, 1])
        split = (mesh[list(UPPER_INNER)] + mesh[list(LOWER_INNER)]) / 2
        teeth = gap < 0.1 * 2 * half
    else:
        half, jaw = 0.19 * w, 0.11 * h
        chin = my + 2.0 * jaw
        split = np.array([[mx - half, my], [mx, my], [mx + half, my]], np.float32)
        teeth = False  # a muzzle's teeth are not where a human's upper teeth would be
    x0, x1 = int(max(0, mx - 2.0 * half)), int(min(W, mx + 2.0 * half + 1))
    y0, y1 = int(max(0, my - 0.2 * h)), int(min(H, max(chin, my + 0.1 * h) + 2))
    ph, pw = max(1, y1 - y0), max(1, x1 - x0)
    gy, gx = np.mgrid[0:ph, 0:pw].astype(np.float32)
    cx, cy = mx - x0, my - y0
    split = (split - (x0, y0)).astype(np.float32)
    order = np.argsort(split[:, 0])
    # Per column, the row where the lips part: the jaw moves what lies below it.
    part = np.interp(gx[0], split[order, 0], split[order, 1])[None, :].astype(np.float32)
    inside = np.zeros((ph, pw), np.float32)
    if mesh is not None:
        oval = (mesh[list(FACE_OVAL)] - (x0, y0)).round().astype(np.int32)
        cv2.fillPoly(inside, [oval], 1.0)
    else:  # a muzzle: an ellipse around the mouth anchor, which may sit low in the face box
        cv2.ellipse(inside, (round(cx), round(cy)), (max(1, round(2.2 * half)), max(1, round(2.5 * jaw))),
                    0, 0, 360, 1.0, -1)
    # Shrink and soften the boundary so the warp fades to nothing before the face's edge.
    edge = max(1, round(0.04 * h))
    inside = cv2.erode(inside, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * edge + 1, 2 * edge + 1)))
    inside = cv2.GaussianBlur(inside, (0, 0), edge / 2 + 0.5) * inside
    across = np.clip(1 - ((gx - cx) / (1.15 * half)) ** 2, 0, 1)  # 1 on the centre line, ~0 at the corners
    below = np.clip((gy - part) / max(1.0, chin - my), 0, 1)
    falloff = np.where(gy >= part, (1 - below) ** 0.7, 0).astype(np.float32) * across * inside
    above = np.clip((part - gy) / np.maximum(1.0, part), 0, 1)
    upper = np.where(gy < part, 1 - above, 0).astype(np.float32) * across * inside
    near = np.exp(-0.5 * ((gy - cy) / max(1.0, 0.35 * jaw + 0.1 * half)) ** 2)
    spread = (near * np.clip(1 - np.abs(gx - cx) / (2.0 * half), 0, 1) * inside).astype(np.float32)
    return MouthRig((x0, y0, x1, y1), (cx, cy), half, jaw, falloff, upper, spread, gx, gy, split, teeth)


def _sample(field: np.ndarray, pts: np.ndarray) -> np.ndarray:
    h, w = field.shape
    xi = np.clip(np.round(pts[:, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.round(pts[:, 1]).astype(int), 0, h - 1)
    return field[yi, xi]


def _cavity(rig: MouthRig, shape: tuple[int, int], drop: float, lift: float, width: float) -> np.ndarray:
    """Where the open mouth shows (0..1): the gap the warp opens between the parted lips."""
    hole = np.zeros(shape, np.float32)
    mx = rig.mouth[0]
    line = rig.split
    xs = mx + (line[:, 0] - mx) * (1 + (width - 1) * _sample(rig.spread, line))
    below = line + (0, 1.5)  # the jaw's share just under the parting line
    top = line[:, 1] - lift * _sample(rig.upper, line - (0, 1.5))
    taper = np.clip(1 - ((line[:, 0] - mx) / max(rig.half_width, 1e-6)) ** 2, 0, 1) ** 0.5
    bottom = line[:, 1] + drop * _sample(rig.falloff, below) * taper
    top = line[:, 1] - (line[:, 1] - top) * taper
    poly = np.concatenate([np.stack([xs, top], 1), np.stack([xs, bottom], 1)[::-1]])
    cv2.fillPoly(hole, [np.round(poly * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
    return cv2.GaussianBlur(hole, (0, 0), max(0.6, 0.05 * drop + 0.4))


def draw_mouth(rig: MouthRig, patch: np.ndarray, opening: float, width: float) -> np.ndarray:
    """Warp a lower-face patch (from the sprite at `rig.rect`) to the given mouth shape."""
    if opening <= 0.01:
        return patch
    drop = rig.jaw * opening
    lift = 0.12 * drop
    mx, my = rig.mouth
    # remap pulls from the source: pixels below the lips show what was `drop` px higher, and
    # spread lips show what was nearer the mouth's centre.
    map_y = rig.gy - drop * rig.falloff + lift * rig.upper
    map_x = mx + (rig.gx - mx) / (1 + (width - 1) * rig.spread)
    out = cv2.remap(patch, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    hole = _cavity(rig, out.shape[:2], drop, lift, width)[..., None]
    inside = np.broadcast_to(CAVITY, out.shape).copy()
    if rig.teeth and opening > 0.5 and drop >= 4:  # a hint of upper teeth in a wide-open mouth
        teeth = np.zeros(out.shape[:2], np.float32)
        cv2.ellipse(teeth, (int(mx), int(my - lift + 0.12 * drop)), (int(rig.half_width * width * 0.55),
                    max(1, int(0.12 * drop))), 0, 0, 360, 0.8, -1, cv2.LINE_AA)
        inside = inside * (1 - teeth[..., None]) + TEETH * teeth[..., None]
    return (out * (1 - hole) + inside * hole).astype(np.uint8)
