"""A character staged for one shot: the cut-out scaled and cropped once, composited per frame.

Per frame only integer placement, a small mouth patch and (during blinks) two eye bands change,
so the frame loop is a few cv2 multiply/add calls on uint8 arrays.
"""
from __future__ import annotations

import cv2
import numpy as np

from tools.faces.mesh import LEFT_EYE, RIGHT_EYE
from tools.faces.portraits import Portrait
from tools.video.animatic.life import draw_blink
from tools.video.animatic.mouths import build_rig, draw_mouth
from tools.video.animatic.staging import Placement


def _mesh_eyes(points: np.ndarray, shape: tuple[int, int]) -> list[tuple[tuple[int, int, int, int], float, float]]:
    """Per eye from the face mesh: the band (x0, y0, x1, y1) from the skin above the upper lid to
    below the lower lid, and the upper and lower lid rows within that band."""
    out = []
    for outer, inner, lid, low in (LEFT_EYE, RIGHT_EYE):
        p = points[[outer, inner, lid, low]]
        w = abs(p[1, 0] - p[0, 0])
        x0 = max(0, int(min(p[0, 0], p[1, 0]) - 0.15 * w))
        x1 = min(shape[1], int(np.ceil(max(p[0, 0], p[1, 0]) + 0.15 * w)))
        y0 = max(0, int(p[2, 1] - 0.3 * w))
        y1 = min(shape[0], int(np.ceil(p[3, 1] + 0.12 * w)))
        if x1 - x0 >= 3 and y1 - y0 >= 3:
            out.append(((x0, y0, x1, y1), float(p[2, 1] - y0), float(p[3, 1] - y0)))
    return out


class StagedSprite:
    """One character's sprite at its staged size and place in a width x height frame."""

    def __init__(self, portrait: Portrait, placement: Placement, width: int, height: int,
                 dilation: int = 0, margin: int = 0):
        px, py, pw, ph = portrait.face
        scale = placement.face_h / ph
        sw, sh = portrait.rgb.shape[1] * scale, portrait.rgb.shape[0] * scale
        face_cx, face_cy = placement.face_cx, placement.face_cy
        ox, oy = face_cx - (px + pw / 2) * scale, face_cy - (py + ph / 2) * scale
        if not placement.foreground and oy + sh < height * 1.04:
            # Keep bodies grounded: push the sprite down until its faded hem leaves the frame,
            # but never so far that the face drops below 62% of the frame.
            oy += min(height * 1.04 - (oy + sh), max(0.0, height * 0.62 - face_cy))
        # Crop to what the frame (plus head-motion margin) can ever show before resizing.
        fx0, fy0 = max(0.0, -margin - ox), max(0.0, -margin - oy)
        fx1, fy1 = min(sw, width + margin - ox), min(sh, height + margin - oy)
        src = (int(fx0 / scale), int(fy0 / scale),
               int(np.ceil(fx1 / scale)), int(np.ceil(fy1 / scale)))
        rgb = portrait.rgb[src[1]:src[3], src[0]:src[2]]
        alpha = portrait.alpha[src[1]:src[3], src[0]:src[2]]
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        self.rgb = cv2.resize(rgb, size, interpolation=interp)
        alpha = np.clip(cv2.resize(alpha, size, interpolation=cv2.INTER_LINEAR), 0, 1)
        if placement.foreground:  # out of focus and in shadow, so it reads as nearer than the focus
            self.rgb = (cv2.GaussianBlur(self.rgb, (0, 0), 0.006 * height) * 0.55).astype(np.uint8)
            alpha = cv2.GaussianBlur(alpha, (0, 0), 0.006 * height)
        self.x, self.y = int(round(ox + src[0] * scale)), int(round(oy + src[1] * scale))
        self.face = ((px - src[0]) * scale, (py - src[1]) * scale, pw * scale, ph * scale)
        mouth = ((portrait.mouth[0] - src[0]) * scale, (portrait.mouth[1] - src[1]) * scale)
        mesh = None
        if portrait.mesh is not None:
            mesh = (portrait.mesh[:, :2] - np.array(src[:2], np.float32)) * scale
        self.alpha = alpha[..., None].astype(np.float32)
        a8 = np.round(alpha * 255).astype(np.uint8)
        self.inv = cv2.merge([255 - a8] * 3)
        self.premult = cv2.multiply(self.rgb, cv2.merge([a8] * 3), scale=1 / 255)
        solid = (alpha > 0.5).astype(np.uint8)
        if dilation > 0:
            k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilation + 1, 2 * dilation + 1))
            solid = cv2.dilate(np.pad(solid, dilation), k)[dilation:-dilation, dilation:-dilation]
        self.solid = solid.astype(bool)
        self.rig = build_rig(self.rgb, self.face, mouth, mesh)
        # Eyes come from the mesh; a face the mesh rejects (an animal) does not blink, since a lid
        # painted where a face box guesses the eyes would smear its nose bridge.
        self.eyes = [] if mesh is None else _mesh_eyes(mesh, self.rgb.shape[:2])

    def face_box(self, dx: int, dy: int, width: int, height: int) -> np.ndarray:
        """x0, y0, x1, y1 of the face in the frame, clipped; NaN when its centre is off-frame."""
        x, y, w, h = self.face
        x0, y0 = x + self.x + dx, y + self.y + dy
        if not (0 <= x0 + w / 2 < width and 0 <= y0 + h / 2 < height):
            return np.full(4, np.nan, np.float32)
        return np.array([max(0, x0), max(0, y0), min(width, x0 + w), min(height, y0 + h)], np.float32)

    def _patches(self, opening: float, lip_width: float, closure: float):
        out = []
        if opening > 0.01:
            x0, y0, x1, y1 = self.rig.rect
            out.append((self.rig.rect, draw_mouth(self.rig, self.rgb[y0:y1, x0:x1], opening, lip_width)))
        if closure > 0:
            for r, lid, low in self.eyes:
                x0, y0, x1, y1 = r
                out.append((r, draw_blink(self.rgb[y0:y1, x0:x1], lid, low, closure)))
        return out

    def composite(self, frame: np.ndarray, mask: np.ndarray, label: int, dx: int, dy: int,
                  opening: float = 0.0, lip_width: float = 1.0, closure: float = 0.0) -> None:
        """Draw the sprite into `frame` and its label into `mask`, in place."""
        H, W = mask.shape
        x, y = self.x + dx, self.y + dy
        sh, sw = self.inv.shape[:2]
        fx0, fy0, fx1, fy1 = max(0, x), max(0, y), min(W, x + sw), min(H, y + sh)
        if fx1 <= fx0 or fy1 <= fy0:
            return
        patches = self._patches(opening, lip_width, closure)
        # What lies under each animated patch, so the patch can be blended over it afterwards.
        unders = []
        for (px0, py0, px1, py1), patch in patches:
            a0, b0, a1, b1 = max(fx0, px0 + x), max(fy0, py0 + y), min(fx1, px1 + x), min(fy1, py1 + y)
            if a1 > a0 and b1 > b0:
                unders.append(((a0, b0, a1, b1), (px0, py0), patch, frame[b0:b1, a0:a1].copy()))
        sx0, sy0 = fx0 - x, fy0 - y
        sl = (slice(sy0, sy0 + fy1 - fy0), slice(sx0, sx0 + fx1 - fx0))
        roi = frame[fy0:fy1, fx0:fx1]
        roi[:] = cv2.add(cv2.multiply(roi, self.inv[sl], scale=1 / 255), self.premult[sl])
        mask[fy0:fy1, fx0:fx1][self.solid[sl]] = label
        for (a0, b0, a1, b1), (px0, py0), patch, under in unders:
            ps = (slice(b0 - y - py0, b1 - y - py0), slice(a0 - x - px0, a1 - x - px0))
            a = self.alpha[b0 - y:b1 - y, a0 - x:a1 - x]
            frame[b0:b1, a0:a1] = (under * (1 - a) + patch[ps] * a).astype(np.uint8)
