"""Faces from real models: BlazeFace detection and the 468-point face mesh (tflite, ai-edge-litert).

The models are MediaPipe's `face_detection_short_range.tflite` (128x128 input, 896 anchors, a box
and six keypoints each) and `face_landmark.tflite` (192x192 crop, 468 points in crop pixels and a
face-presence logit). A presence below `MESH_PRESENCE` says "not a human face" (animals,
drawings): callers then fall back to the cast's `face_box` and `mouth` anchor.
Interpreters are built once per thread (they are not thread-safe; the evaluators run on two).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from tools.media.packaged import model_file

MESH_PRESENCE = 0.5
DETECT_SCORE = 0.5
# Mesh indices (MediaPipe's canonical topology).
UPPER_LIP_INNER, LOWER_LIP_INNER = 13, 14
MOUTH_LEFT, MOUTH_RIGHT = 61, 291
CHIN, NOSE_TIP = 152, 1
LEFT_EYE = (33, 133, 159, 145)  # outer corner, inner corner, upper lid, lower lid
RIGHT_EYE = (263, 362, 386, 374)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)

_LOCAL = threading.local()
_BUILD_LOCK = threading.Lock()  # one build at a time: they redirect the process's stderr


@dataclass
class FaceMesh:
    """468 mesh points (x, y, z) in image pixels and the model's face-presence probability."""

    points: np.ndarray  # (468, 3) float32
    presence: float

    @property
    def is_face(self) -> bool:
        return self.presence >= MESH_PRESENCE

    def box(self) -> tuple[int, int, int, int]:
        """x, y, w, h of the mesh's face oval."""
        oval = self.points[list(FACE_OVAL), :2]
        x0, y0 = oval.min(axis=0)
        x1, y1 = oval.max(axis=0)
        return int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0))

    def mouth_ratio(self) -> float:
        """Inner lip gap over mouth width: 0 closed, ~0.5 wide open (the lip-sync measure)."""
        p = self.points
        gap = float(np.linalg.norm(p[LOWER_LIP_INNER, :2] - p[UPPER_LIP_INNER, :2]))
        width = float(np.linalg.norm(p[MOUTH_RIGHT, :2] - p[MOUTH_LEFT, :2]))
        return gap / max(width, 1e-6)


def _interpreter(name: str):
    cache = _LOCAL.__dict__.setdefault("interpreters", {})
    if name not in cache:
        cache[name] = _build_interpreter(name)
    return cache[name]


def _build_interpreter(name: str):
    from ai_edge_litert.interpreter import Interpreter

    path = str(model_file(Path(name).stem))
    # The runtime announces its XNNPACK delegate on the C-level stderr ("INFO: Created TensorFlow
    # Lite XNNPACK delegate"), which `compose --quiet` must not show; silence it while building.
    with _BUILD_LOCK:
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            it = Interpreter(model_path=path, num_threads=1)
            it.allocate_tensors()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
    return it


def run_tflite(name: str, x: np.ndarray) -> list[np.ndarray]:
    it = _interpreter(name)
    it.set_tensor(it.get_input_details()[0]["index"], x[None].astype(np.float32))
    it.invoke()
    return [it.get_tensor(o["index"])[0] for o in it.get_output_details()]


@lru_cache(maxsize=1)
def _anchors() -> np.ndarray:
    """BlazeFace short-range anchors: strides 8 (2 per cell) and 16 (6 per cell), centres in 0..1."""
    out = []
    for stride, per in ((8, 2), (16, 6)):
        n = 128 // stride
        for y in range(n):
            for x in range(n):
                out += [((x + 0.5) / n, (y + 0.5) / n)] * per
    return np.array(out, np.float32)


def _letterbox(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float, float, float]:
    h, w = rgb.shape[:2]
    s = side / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    canvas = np.zeros((side, side, 3), np.uint8)
    px, py = (side - nw) // 2, (side - nh) // 2
    canvas[py:py + nh, px:px + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    return canvas, s, px, py


def detect_faces(rgb: np.ndarray, min_score: float = DETECT_SCORE) -> list[tuple[tuple[int, int, int, int], float]]:
    """BlazeFace boxes (x, y, w, h) in image pixels with scores, best first, overlaps removed."""
    img, s, px, py = _letterbox(rgb, 128)
    reg, cls = run_tflite("face_detection_short_range.tflite", img.astype(np.float32) / 127.5 - 1.0)
    scores = 1 / (1 + np.exp(-np.clip(cls[:, 0], -80, 80)))
    keep = np.nonzero(scores >= min_score)[0]
    a = _anchors()
    boxes = []
    for i in keep[np.argsort(-scores[keep])]:
        cx, cy = a[i, 0] * 128 + reg[i, 0], a[i, 1] * 128 + reg[i, 1]
        w, h = reg[i, 2], reg[i, 3]
        box = np.array([(cx - w / 2 - px) / s, (cy - h / 2 - py) / s, w / s, h / s])
        if all(_iou(box, b) < 0.3 for b, _ in boxes):
            boxes.append((box, float(scores[i])))
    return [(tuple(int(round(v)) for v in b), sc) for b, sc in boxes]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / max(a[2] * a[3] + b[2] * b[3] - inter, 1e-6)


def face_mesh(rgb: np.ndarray, box: tuple[float, float, float, float], grow: float = 1.5) -> FaceMesh:
    """The 468-point mesh of the face in `box` (x, y, w, h), from a square crop `grow` x its size."""
    x, y, w, h = box
    side = max(w, h) * grow
    cx, cy = x + w / 2, y + h / 2
    s = 192.0 / side
    m = np.array([[s, 0, 96 - s * cx], [0, s, 96 - s * cy]], np.float32)
    crop = cv2.warpAffine(rgb, m, (192, 192), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    pts, logit = run_tflite("face_landmark.tflite", crop.astype(np.float32) / 255.0)
    pts = pts.reshape(468, 3).astype(np.float32)
    pts[:, 0] = (pts[:, 0] - m[0, 2]) / s
    pts[:, 1] = (pts[:, 1] - m[1, 2]) / s
    pts[:, 2] = pts[:, 2] / s
    presence = float(1 / (1 + np.exp(-np.clip(float(np.ravel(logit)[0]), -80, 80))))
    return FaceMesh(points=pts, presence=presence)


def find_mesh(rgb: np.ndarray, hint: Optional[tuple[float, float, float, float]] = None) -> Optional[FaceMesh]:
    """The mesh of the face at `hint` (else of the best BlazeFace detection), refined once."""
    if hint is None:
        found = detect_faces(rgb)
        if not found:
            return None
        hint = found[0][0]
    mesh = face_mesh(rgb, hint)
    if mesh.is_face:  # a second pass centred on the mesh's own box fits tighter
        again = face_mesh(rgb, mesh.box(), grow=1.35)
        if again.is_face:
            return again
    return mesh
