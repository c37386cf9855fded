"""Subject mattes for reference images: u2netp (onnx) for every subject, gated for people by a
dilated selfie-segmentation mask, cached on disk per image digest.

u2netp (rembg's small salient-object model, Apache-2.0 weights) keeps hair and fur, and takes a cat
as readily as a person; on a portrait it may also keep a salient prop behind the sitter (a flag), so
for human subjects its matte is multiplied by MediaPipe's selfie mask, dilated so that the selfie
model's tight edge never trims hair. Dark solid parts inside the subject (a suit's neck ring) stay
in the matte: u2netp judges objects, not brightness, so there are no black holes to fill.
"""
from __future__ import annotations

import hashlib
import threading
from functools import lru_cache

import cv2
import numpy as np

from tools.media.files import user_cache_dir, written_whole
from tools.media.packaged import MODELS, model_file

U2_SIDE = 320
SELFIE_SIDE = 256
SELFIE_GROW = 0.06  # the selfie mask is dilated by this fraction of the image's longer side
_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _u2net():
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(model_file("u2netp")), opts, providers=["CPUExecutionProvider"])


def u2netp_matte(rgb: np.ndarray) -> np.ndarray:
    """Soft subject matte (float32 0..1, the image's size) from u2netp."""
    h, w = rgb.shape[:2]
    x = cv2.resize(rgb, (U2_SIDE, U2_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    sess = _u2net()
    with _LOCK:
        out = sess.run(None, {sess.get_inputs()[0].name: x.transpose(2, 0, 1)[None]})[0][0, 0]
    lo, hi = float(out.min()), float(out.max())
    out = (out - lo) / max(hi - lo, 1e-6)
    return np.clip(cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0).astype(np.float32)


def selfie_mask(rgb: np.ndarray) -> np.ndarray:
    """MediaPipe's person mask (float32 0..1, the image's size)."""
    from tools.faces.mesh import run_tflite

    h, w = rgb.shape[:2]
    x = cv2.resize(rgb, (SELFIE_SIDE, SELFIE_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    (out,) = run_tflite("selfie_segmentation.tflite", x)
    return np.clip(cv2.resize(out[..., 0], (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)


def _gate(rgb: np.ndarray) -> np.ndarray:
    person = (selfie_mask(rgb) > 0.5).astype(np.uint8)
    r = max(1, int(SELFIE_GROW * max(rgb.shape[:2])))
    grown = cv2.dilate(person, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return cv2.GaussianBlur(grown.astype(np.float32), (0, 0), r / 3)


def subject_matte(rgb: np.ndarray, person: bool) -> np.ndarray:
    """The subject's soft matte; people are gated by the dilated selfie mask. Cached on disk by
    the digest of the pixels, the kind of subject and the model files' digests."""
    key = hashlib.sha256(rgb.tobytes() + str(rgb.shape).encode() + bytes([person])
                         + MODELS["u2netp"].sha256.encode()
                         + MODELS["selfie_segmentation"].sha256.encode()).hexdigest()
    path = user_cache_dir() / "mattes" / f"{key}.npy"
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == rgb.shape[:2]:
                return cached.astype(np.float32) / 255.0
        except (OSError, ValueError):
            pass  # a damaged entry is recomputed and replaced
    matte = u2netp_matte(rgb)
    if person:
        matte = matte * _gate(rgb)
    stored = np.round(matte * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_whole(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, stored, allow_pickle=False)
    # What the cache will give back, not the unrounded matte: a machine's first render must be the
    # same film as every later one (it was not: a shot passed lip-sync warm and was retried cold).
    return stored.astype(np.float32) / 255.0
