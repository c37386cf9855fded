"""Reference portraits: load any image, find the face, cut the character out with a soft matte.

Human faces are found by BlazeFace and fitted by the 468-point face mesh (`tools.faces.mesh`); the
face box is the mesh's face oval, so a character's head has one size in every shot of a framing.
A cast entry's `face_box` (and optional `mouth: [x, y]`) stages faces the mesh rejects (the
example's cat); without `mouth` their mouth sits at the lower centre of the box. The cut-out is a
head-and-shoulders crop matted by u2netp (`tools.faces.mattes`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tools.base import ToolError
from tools.faces.mattes import subject_matte
from tools.faces.mesh import LOWER_LIP_INNER, UPPER_LIP_INNER, find_mesh

Box = tuple[int, int, int, int]  # x, y, width, height in pixels
MAX_IMAGE_SIDE = 8192
MAX_IMAGE_PIXELS = 40_000_000
MUZZLE_MOUTH = 0.85  # a non-human face's mouth, without a cast anchor: this far down its face box


def _load_rgba(path: Path) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """RGB uint8 plus an alpha plane (float32 0..1) when the file has real transparency."""
    path = Path(path)
    if not path.is_file():
        raise ToolError(f"image {path} does not exist", "fix the path in the cast's `images` list")
    try:
        with Image.open(path) as im:  # reads the header only: the size is known before decoding
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS or max(w, h) > MAX_IMAGE_SIDE:
                raise ToolError(f"image {path} is {w}x{h} pixels; reference images are limited to "
                                f"{MAX_IMAGE_SIDE} pixels a side and {MAX_IMAGE_PIXELS // 10**6} megapixels",
                                "downscale it (a 1024-pixel portrait is plenty)")
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                # 16-bit and float images: stretch to 8 bits by their own range, not by clipping.
                arr = np.asarray(im, dtype=np.float32)
                lo, hi = float(arr.min()), float(arr.max())
                arr = (arr - lo) / max(hi - lo, 1e-6) * 255.0
                gray = arr.round().astype(np.uint8)
                return np.repeat(gray[..., None], 3, axis=2), None
            has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
            rgba = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    except Image.DecompressionBombError as exc:  # PIL's own check, made while reading the header
        raise ToolError(f"image {path} is too large to decode safely: {exc}",
                        "downscale it (a 1024-pixel portrait is plenty)") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ToolError(f"cannot read image {path}: {exc}", "use a PNG or JPEG file") from exc
    if rgba.dtype != np.uint8:
        rgba = (rgba / max(int(rgba.max()), 1) * 255).astype(np.uint8)
    if rgba.shape[2] == 4:
        alpha = rgba[..., 3].astype(np.float32) / 255.0
        rgb = np.ascontiguousarray(rgba[..., :3])
        return rgb, (alpha if alpha.min() < 0.98 else None)
    return np.ascontiguousarray(rgba), None


def load_image(path: Path) -> np.ndarray:
    """Load any image file (RGBA, palette, grayscale, 16-bit) as HxWx3 uint8 RGB."""
    rgb, alpha = _load_rgba(path)
    if alpha is not None:  # flatten transparency onto mid gray so colours stay readable
        rgb = (rgb * alpha[..., None] + 128.0 * (1.0 - alpha[..., None])).astype(np.uint8)
    return rgb


def detect_face(rgb: np.ndarray) -> Optional[Box]:
    """(x, y, w, h) of the best human face in an RGB image (BlazeFace, fitted by the mesh), or None."""
    mesh = find_mesh(rgb)
    return mesh.box() if mesh is not None and mesh.is_face else None


@dataclass
class Portrait:
    """A head-and-shoulders cut-out: RGB, soft alpha, the face box and mouth centre inside it.

    `mesh` holds the 468 face-mesh points (cut-out pixels) for a human face, None for a face the
    mesh rejects (an animal, a drawing), whose mouth then comes from the cast.
    """

    rgb: np.ndarray  # h x w x 3 uint8
    alpha: np.ndarray  # h x w float32 in 0..1
    face: Box  # x, y, w, h within `rgb`
    mouth: tuple[float, float]  # mouth centre within `rgb`
    mesh: Optional[np.ndarray] = None  # (468, 3) float32 within `rgb`


def cut_out(rgb: np.ndarray, face: Box, alpha: Optional[np.ndarray] = None, person: bool = True) -> tuple[
        np.ndarray, np.ndarray, tuple[int, int]]:
    """Crop a head-and-shoulders region around `face` and matte it (u2netp, or the file's own
    alpha); returns the crop, its soft matte and the crop's origin in the image."""
    ih, iw = rgb.shape[:2]
    x, y, fw, fh = face
    cx = x + fw / 2
    x0, x1 = max(0, round(cx - 2.4 * fw)), min(iw, round(cx + 2.4 * fw))
    y0, y1 = max(0, round(y - 0.9 * fh)), min(ih, round(y + 3.2 * fh))
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    if alpha is not None:
        matte = alpha[y0:y1, x0:x1].astype(np.float32)
    else:
        matte = subject_matte(crop, person)
    # Fade the bottom edge so a body that ends inside the frame dissolves instead of being sliced,
    # but never over the face (a close crop ends at the chin).
    rows = matte.shape[0]
    span = max(1.0, min(0.12 * rows, rows - (y + fh - y0)))
    fade = np.clip((rows - np.arange(rows)) / span, 0.0, 1.0).astype(np.float32)
    matte = matte * fade[:, None]
    # Where the photo itself ends (a cat filling its frame), soften the cut so the sprite has no
    # square corners: fade the matte over a few percent of the crop at those image edges.
    edge = max(2.0, 0.04 * min(matte.shape))
    ramp = lambda n: np.clip((np.arange(n) + 0.5) / edge, 0.0, 1.0).astype(np.float32)  # noqa: E731
    rows, cols = np.ones(matte.shape[0], np.float32), np.ones(matte.shape[1], np.float32)
    if y0 == 0:
        rows = rows * ramp(len(rows))
    if x0 == 0:
        cols = cols * ramp(len(cols))
    if x1 == iw:
        cols = cols * ramp(len(cols))[::-1]
    return crop, np.clip(matte * rows[:, None] * cols[None, :], 0.0, 1.0), (x0, y0)


def _validated_box(box: Box, shape: tuple[int, int], path: Path) -> Box:
    x, y, w, h = box
    ih, iw = shape
    if x + w > iw or y + h > ih:
        raise ToolError(f"face_box {list(box)} lies outside image {path} ({iw}x{ih})",
                        "set the cast's face_box to [x, y, width, height] inside the image")
    return box


def _validated_point(point: tuple[int, int], shape: tuple[int, int], path: Path) -> tuple[int, int]:
    ih, iw = shape
    if not (0 <= point[0] < iw and 0 <= point[1] < ih):
        raise ToolError(f"mouth {list(point)} lies outside image {path} ({iw}x{ih})",
                        "set the cast's mouth to [x, y] at the mouth's centre inside the image")
    return point


@lru_cache(maxsize=32)
def _portrait_cached(path: str, mtime: float, face_box: Optional[Box],
                     mouth: Optional[tuple[int, int]]) -> Portrait:
    rgb, alpha = _load_rgba(Path(path))
    flat = rgb if alpha is None else (rgb * alpha[..., None] + 128.0 * (1 - alpha[..., None])).astype(np.uint8)
    if face_box is not None:
        face = _validated_box(face_box, rgb.shape[:2], Path(path))
        mesh = find_mesh(flat, face)
    else:
        mesh = find_mesh(flat)
        if mesh is None or not mesh.is_face:
            raise ToolError(f"no face found in reference image {path}",
                            "add `face_box: [x, y, width, height]` to this character in the cast")
        face = mesh.box()
    human = mesh is not None and mesh.is_face
    crop, matte, (x0, y0) = cut_out(rgb, face, alpha, person=human)
    if mouth is not None:
        mx, my = _validated_point(mouth, rgb.shape[:2], Path(path))
    elif human:
        mx, my = (mesh.points[UPPER_LIP_INNER, :2] + mesh.points[LOWER_LIP_INNER, :2]) / 2
    else:  # the lower centre of the face box: where a muzzle's mouth sits, never between the eyes
        mx, my = face[0] + face[2] / 2, face[1] + MUZZLE_MOUTH * face[3]
    points = None
    if human:
        points = mesh.points.copy()
        points[:, 0] -= x0
        points[:, 1] -= y0
    return Portrait(rgb=crop, alpha=matte, face=(face[0] - x0, face[1] - y0, face[2], face[3]),
                    mouth=(float(mx) - x0, float(my) - y0), mesh=points)


def load_portrait(path: Path, face_box: Optional[Box] = None,
                  mouth: Optional[tuple[int, int]] = None) -> Portrait:
    """Load a reference image and cut out the character (cached per file version, box and mouth)."""
    path = Path(path)
    if not path.is_file():
        raise ToolError(f"image {path} does not exist", "fix the path in the cast's `images` list")
    box = tuple(int(v) for v in face_box) if face_box is not None else None
    point = tuple(int(v) for v in mouth) if mouth is not None else None
    return _portrait_cached(str(path.resolve()), path.stat().st_mtime, box, point)
