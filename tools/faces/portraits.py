"""Reference portraits: load any image, find the face, cut the character out with a soft matte.

Faces are found with OpenCV's bundled Haar cascades (`opencv-python-headless<5`; version 5 ships
none). A cast entry's `face_box` overrides detection, which is how non-human characters (the
example's cat) are staged. The cut-out is a head-and-shoulders sprite: GrabCut seeded by a
head-and-shoulders envelope built around the face, feathered into a soft alpha matte.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tools.base import ToolError

Box = tuple[int, int, int, int]  # x, y, width, height in pixels
MAX_IMAGE_SIDE = 8192
MAX_IMAGE_PIXELS = 40_000_000
DETECT_SIDE = 800  # detection runs on a copy no larger than this: cascades are scale-free anyway


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


@lru_cache(maxsize=4)
def _cascade(name: str) -> cv2.CascadeClassifier:
    path = Path(cv2.data.haarcascades) / name
    clf = cv2.CascadeClassifier(str(path))
    if clf.empty():
        raise ToolError(f"OpenCV Haar cascade {path} is missing",
                        "install opencv-python-headless<5 (version 5 ships no cascades)")
    return clf


def detect_face(rgb: np.ndarray) -> Optional[Box]:
    """(x, y, w, h) of the largest frontal face in an RGB image, or None."""
    h, w = rgb.shape[:2]
    scale = min(1.0, DETECT_SIDE / max(h, w))
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        gray = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    min_side = max(24, int(0.08 * min(gray.shape)))
    # The default cascade is the most precise; alt2 finds more faces at lower precision.
    for name, neighbours in (("haarcascade_frontalface_default.xml", 5),
                             ("haarcascade_frontalface_alt2.xml", 3)):
        faces = _cascade(name).detectMultiScale(gray, scaleFactor=1.1, minNeighbors=neighbours,
                                                minSize=(min_side, min_side))
        if len(faces):
            x, y, fw, fh = max(faces, key=lambda f: f[2] * f[3])
            return (round(x / scale), round(y / scale), round(fw / scale), round(fh / scale))
    return None


@dataclass
class Portrait:
    """A head-and-shoulders cut-out: RGB, soft alpha, and the face box inside the cut-out."""

    rgb: np.ndarray  # h x w x 3 uint8
    alpha: np.ndarray  # h x w float32 in 0..1
    face: Box  # x, y, w, h within `rgb`


def _envelope(shape: tuple[int, int], face: Box) -> np.ndarray:
    """Head ellipse + neck + widening shoulders, as a uint8 0/1 map (the matte's outer limit)."""
    h, w = shape
    x, y, fw, fh = face
    cx = x + fw / 2
    env = np.zeros((h, w), np.uint8)
    cv2.ellipse(env, (round(cx), round(y + 0.42 * fh)), (round(0.78 * fw), round(0.92 * fh)),
                0, 0, 360, 1, -1)
    chin = y + 0.95 * fh
    shoulders = np.array([[cx - 0.45 * fw, chin], [cx + 0.45 * fw, chin],
                          [cx + 1.9 * fw, chin + 1.1 * fh], [cx + 2.3 * fw, h + fh],
                          [cx - 2.3 * fw, h + fh], [cx - 1.9 * fw, chin + 1.1 * fh]])
    cv2.fillPoly(env, [shoulders.round().astype(np.int32)], 1)
    return env


def _fill_holes(fg: np.ndarray) -> np.ndarray:
    """Background pockets enclosed by the subject (a suit collar, a badge) belong to the subject."""
    n, lab = cv2.connectedComponents((fg == 0).astype(np.uint8))
    border = set(np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))) - {0}
    outside = np.isin(lab, list(border))
    return np.where(outside, 0, 1).astype(np.uint8)


def _grabcut_matte(rgb: np.ndarray, face: Box, env: np.ndarray) -> np.ndarray:
    """Binary foreground from GrabCut seeded by the envelope; the envelope alone if it fails."""
    x, y, fw, fh = face
    mask = np.where(env > 0, cv2.GC_PR_FGD, cv2.GC_BGD).astype(np.uint8)
    # Ring just inside the envelope edge: probably background, so GrabCut can trim hair/shoulders.
    inner = cv2.erode(env, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))
    mask[(env > 0) & (inner == 0)] = cv2.GC_PR_BGD
    core = np.zeros_like(env)
    cv2.ellipse(core, (round(x + fw / 2), round(y + 0.55 * fh)), (round(0.3 * fw), round(0.38 * fh)),
                0, 0, 360, 1, -1)
    mask[core > 0] = cv2.GC_FGD
    # The neck and collar are the subject even when dark or hollow (a suit ring, a scarf).
    neck = np.array([[x + 0.3 * fw, y + 0.9 * fh], [x + 0.7 * fw, y + 0.9 * fh],
                     [x + 0.85 * fw, y + 1.7 * fh], [x + 0.15 * fw, y + 1.7 * fh]])
    cv2.fillPoly(mask, [neck.round().astype(np.int32)], int(cv2.GC_FGD))
    if (mask == cv2.GC_BGD).sum() < 50:  # the envelope fills the image: nothing to learn from
        return env
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    # grabCut seeds its colour models with k-means from OpenCV's process-wide RNG: without a fixed
    # seed the matte depended on whatever ran before, and cached renders stopped being reproducible.
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(rgb, mask, None, bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return env
    fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(fg)
    if n <= 1:
        return env
    keep = lab[min(max(round(y + 0.55 * fh), 0), fg.shape[0] - 1),
               min(max(round(x + fw / 2), 0), fg.shape[1] - 1)]
    fg = (lab == keep).astype(np.uint8) if keep else fg
    fg = _fill_holes(fg)
    # GrabCut sometimes eats most of a low-contrast subject; then the envelope is the better cut.
    if fg.sum() < 0.45 * env.sum():
        return env
    return cv2.morphologyEx(fg, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))


def cut_out(rgb: np.ndarray, face: Box, alpha: Optional[np.ndarray] = None) -> Portrait:
    """Cut a head-and-shoulders sprite around `face` with a soft matte (or the file's own alpha)."""
    ih, iw = rgb.shape[:2]
    x, y, fw, fh = face
    cx = x + fw / 2
    x0, x1 = max(0, round(cx - 2.4 * fw)), min(iw, round(cx + 2.4 * fw))
    y0, y1 = max(0, round(y - 0.9 * fh)), min(ih, round(y + 3.2 * fh))
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    face_c = (x - x0, y - y0, fw, fh)
    if alpha is not None:
        matte = alpha[y0:y1, x0:x1].astype(np.float32)
    else:
        # GrabCut on a copy with the face ~72 px wide: quality is the same, time is not.
        s = min(1.0, 72.0 / fw)
        small = cv2.resize(crop, (max(8, round(crop.shape[1] * s)), max(8, round(crop.shape[0] * s))),
                           interpolation=cv2.INTER_AREA) if s < 1.0 else crop
        sf = tuple(round(v * s) for v in face_c)
        env = _envelope(small.shape[:2], sf)
        fg = _grabcut_matte(small, sf, env).astype(np.float32)
        sigma = max(1.0, 0.035 * sf[2])
        fg = cv2.GaussianBlur(fg, (0, 0), sigma) * cv2.GaussianBlur(env.astype(np.float32), (0, 0), sigma)
        matte = cv2.resize(fg, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_LINEAR)
    # Fade the bottom edge so a body that ends inside the frame dissolves instead of being sliced.
    rows = matte.shape[0]
    fade = np.clip((rows - np.arange(rows)) / max(1.0, 0.12 * rows), 0.0, 1.0).astype(np.float32)
    matte = np.clip(matte * fade[:, None], 0.0, 1.0)
    return Portrait(rgb=crop, alpha=matte, face=face_c)


def _validated_box(box: Box, shape: tuple[int, int], path: Path) -> Box:
    x, y, w, h = box
    ih, iw = shape
    if x + w > iw or y + h > ih:
        raise ToolError(f"face_box {list(box)} lies outside image {path} ({iw}x{ih})",
                        "set the cast's face_box to [x, y, width, height] inside the image")
    return box


@lru_cache(maxsize=32)
def _portrait_cached(path: str, mtime: float, face_box: Optional[Box]) -> Portrait:
    rgb, alpha = _load_rgba(Path(path))
    if face_box is not None:
        face = _validated_box(face_box, rgb.shape[:2], Path(path))
    else:
        face = detect_face(rgb)
        if face is None:
            raise ToolError(f"no face found in reference image {path}",
                            "add `face_box: [x, y, width, height]` to this character in the cast")
    return cut_out(rgb, face, alpha)


def load_portrait(path: Path, face_box: Optional[Box] = None) -> Portrait:
    """Load a reference image and cut out the character (cached per file version and box)."""
    path = Path(path)
    if not path.is_file():
        raise ToolError(f"image {path} does not exist", "fix the path in the cast's `images` list")
    box = tuple(int(v) for v in face_box) if face_box is not None else None
    return _portrait_cached(str(path.resolve()), path.stat().st_mtime, box)
