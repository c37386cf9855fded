"""What the evaluators read from an attempt: mouth activity and face crops from the decoded pixels,
and each speaker's own stem of the shot's audio.

Everything is measured from what a viewer gets: the decoded clip inside each character's face box
(from masks.npz). A human face is read by the 468-point face mesh: the aperture is the inner lip
gap over the mouth width. A face the mesh rejects (median presence < 0.5: an animal, a drawing)
is read from pixels: how much darker its mouth region is than its own resting mouth, over the
character's own mask pixels so a neighbour never counts. Both apertures are scaled so that a
wide-open mouth reads about 1. A clip is decoded once per attempt however many evaluators ask
(`shot_signals` keeps the last few).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from tools.base import AttemptInput, ShotAudio, ToolError
from tools.faces.mesh import MESH_PRESENCE
from tools.media.audio import read_audio
from tools.memo import memoised

# Aperture std over a shot below which a mouth is still, per measure: a speaking mouth moves
# 0.05-0.17 (mesh; a smiling photo's open mouth moves least) or 0.25-0.35 (pixels); a silent one
# 0.005-0.012 (mesh) or 0.01-0.04 (pixels: compression and head-motion noise).
MIN_MOTION = {"mesh": 0.03, "pixels": 0.1}
MESH_OPEN = 0.35  # lip gap / mouth width of a wide-open mouth: the mesh measure's unit
PIXEL_OPEN = 0.02  # mouth-region darkening of a wide-open painted mouth: the pixel measure's unit
AUDIO_SR = 16000
MOUTH_SIZE = (24, 12)  # (w, h) the mouth crop is resampled to, so camera zoom does not matter
FACE_SIZE = 64  # side of the square face crops kept for identity
FACE_SAMPLES = 8  # face crops kept per character over a shot


# ---------------------------------------------------------------------------------------- video


@dataclass
class ShotSignals:
    """What the evaluators need from one decoded clip."""

    labels: list[str]  # cast ids, the order of masks.npz
    fps: int
    frames: int
    aperture: np.ndarray  # (F, K) mouth aperture, ~1 wide open; NaN where the face is not visible
    faces: dict[str, list[np.ndarray]] = field(default_factory=dict)  # gray FACE_SIZE crops
    measure: dict[str, str] = field(default_factory=dict)  # per character: "mesh" or "pixels"

    def still_below(self, k: int) -> float:
        """The aperture std under which character k's mouth counts as still (see MIN_MOTION)."""
        return MIN_MOTION[self.measure.get(self.labels[k], "pixels")]

    def index(self, cid: str) -> Optional[int]:
        return self.labels.index(cid) if cid in self.labels else None

    def opening(self, k: int) -> np.ndarray:
        """Aperture above the character's own resting mouth (10th percentile over the shot)."""
        x = self.aperture[:, k]
        if not np.isfinite(x).any():
            return x
        return np.maximum(x - np.nanpercentile(x, 10), 0.0)


def _box_crop(gray: np.ndarray, label_map: np.ndarray, box, rows: tuple[float, float], cols: tuple[float, float],
              size: tuple[int, int], label: int) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """A sub-box of a face box (fractions of its height/width), resampled to `size` (w, h), with
    the map of its pixels whose mask label is `label` (compared inside the crop only: cheap)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    H, W = gray.shape
    ya, yb = int(round(y0 + rows[0] * h)), int(round(y0 + rows[1] * h))
    xa, xb = int(round(x0 + cols[0] * w)), int(round(x0 + cols[1] * w))
    ya, yb, xa, xb = max(ya, 0), min(yb, H), max(xa, 0), min(xb, W)
    if yb - ya < 2 or xb - xa < 2:
        return None
    pix = cv2.resize(gray[ya:yb, xa:xb], size, interpolation=cv2.INTER_AREA).astype(np.float32)
    mask = cv2.resize((label_map[ya:yb, xa:xb] == label).view(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    return pix, mask


# The mouth sits in the lower third of a face box. An open mouth darkens that region (the cavity,
# drawn in the animatic, real in a diffusion model) wherever the renderer draws it, even when a
# small face blurs it to a few pixels; so the aperture is how much darker the region is than the
# character's own resting mouth (per pixel, the bright end of the shot), over the character's pixels.
MOUTH_ROWS, MOUTH_COLS = (0.6, 1.0), (0.2, 0.8)


REST_PERCENTILE = 90


def _apertures(mouths: list[Optional[tuple[np.ndarray, np.ndarray]]]) -> np.ndarray:
    """Per frame, mean darkening of the mouth crop below the resting mouth; NaN where unseen."""
    out = np.full(len(mouths), np.nan, np.float32)
    seen = [i for i, m in enumerate(mouths) if m is not None]
    if not seen:
        return out
    stack = np.stack([mouths[i][0] for i in seen])
    rest = np.percentile(stack, REST_PERCENTILE, axis=0)
    for j, i in enumerate(seen):
        own = mouths[i][1] > 0
        out[i] = float(np.maximum(rest - stack[j], 0.0)[own].mean()) / 255.0
    return out


def _luma(frame) -> np.ndarray:
    """The decoded frame's Y plane as HxW uint8, without a colour conversion (the clips are
    yuv420p; studio range is fine for relative measures)."""
    if frame.format.name not in ("yuv420p", "yuvj420p", "yuv422p", "yuv444p"):
        return frame.to_ndarray(format="gray")
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)
    return rows[:, :frame.width]


def _mesh_ratio(rgb: np.ndarray, box) -> tuple[float, float]:
    """(lip gap / mouth width, presence) of the face in `box` (x0, y0, x1, y1) of a frame."""
    from tools.faces.mesh import find_mesh

    x0, y0, x1, y1 = (float(v) for v in box)
    mesh = find_mesh(rgb, (x0, y0, x1 - x0, y1 - y0))  # two passes: the second fits small faces
    return mesh.mouth_ratio(), mesh.presence


def _decode(clip_path: Path, masks_path: Path) -> ShotSignals:
    import av

    from tools.media.masks import load_masks

    m = load_masks(masks_path)
    masks, boxes = m["masks"], m["face_boxes"]
    labels = [str(x) for x in m["labels"]]
    K = len(labels)
    if K == 0:  # nobody on screen (an establishing shot): nothing to measure, nothing to decode
        return ShotSignals(labels=[], fps=25, frames=0, aperture=np.zeros((0, 0), np.float32))
    mouths: list[list] = [[] for _ in range(K)]
    faces_all: list[list] = [[] for _ in range(K)]
    ratios = np.full((len(masks), K), np.nan, np.float32)
    presence = np.full((len(masks), K), np.nan, np.float32)
    with av.open(str(clip_path)) as container:
        container.streams.video[0].thread_type = "AUTO"  # frame-threaded decoding: both cores
        fps = int(round(float(container.streams.video[0].average_rate or 25)))
        for t, frame in enumerate(container.decode(video=0)):
            if t >= len(masks):
                break
            gray = _luma(frame)
            H, W = gray.shape
            rgb = None
            for k in range(K):
                mouth = face = None
                x0, y0, x1, y1 = boxes[t, k]
                # A face cut by the frame's edge (an over-the-shoulder listener) is not read: the
                # mesh fits half a face badly, and a viewer cannot read those lips either.
                if x0 >= 0.5 and y0 >= 0.5 and x1 <= W - 0.5 and y1 <= H - 0.5:
                    face = _box_crop(gray, masks[t], boxes[t, k], (0.0, 1.0), (0.0, 1.0), (FACE_SIZE, FACE_SIZE), k + 1)
                    mouth = _box_crop(gray, masks[t], boxes[t, k], MOUTH_ROWS, MOUTH_COLS, MOUTH_SIZE, k + 1)
                    if face is None or mouth is None or face[1].mean() < 0.5 or mouth[1].mean() < 0.5:
                        face = mouth = None  # mostly off screen or behind a neighbour: no reading
                    else:
                        rgb = frame.to_ndarray(format="rgb24") if rgb is None else rgb
                        ratios[t, k], presence[t, k] = _mesh_ratio(rgb, boxes[t, k])
                mouths[k].append(mouth)
                faces_all[k].append(None if face is None else face[0].astype(np.uint8))
    frames = len(mouths[0])
    if frames == 0:
        raise ToolError(f"{clip_path} has no video frames", "re-render the shot")
    faces: dict[str, list[np.ndarray]] = {}
    for k, cid in enumerate(labels):
        seen = [t for t, f in enumerate(faces_all[k]) if f is not None]
        picks = sorted({seen[int(i)] for i in np.linspace(0, len(seen) - 1, FACE_SAMPLES)}) if seen else []
        faces[cid] = [faces_all[k][t] for t in picks]
    columns, measure = [], {}
    for k, cid in enumerate(labels):
        seen = presence[:frames, k][np.isfinite(presence[:frames, k])]
        if len(seen) and float(np.median(seen)) >= MESH_PRESENCE:
            measure[cid] = "mesh"
            columns.append(ratios[:frames, k] / MESH_OPEN)
        else:
            measure[cid] = "pixels"
            columns.append(_apertures(mouths[k]) / PIXEL_OPEN)
    aperture = np.stack(columns, axis=1).astype(np.float32)
    return ShotSignals(labels=labels, fps=fps, frames=frames, aperture=aperture, faces=faces, measure=measure)


_SIGNALS: dict[tuple, ShotSignals] = {}  # `tools.memo.memoised`'s: one decode per clip, the last KEEP_SIGNALS kept
KEEP_SIGNALS = 4


def shot_signals(clip_path: Path, masks_path: Path) -> ShotSignals:
    """Decode a clip once and measure every character's mouth aperture and face crops.

    Memoised on the files' paths, sizes and modification times, so the lipsync, binding and
    identity evaluators of one attempt share a single decode, also when two of them ask at once
    (they run on two threads: the second waits for the first's decode).
    """
    key = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in (Path(clip_path), Path(masks_path)))
    return memoised(_SIGNALS, key, lambda: _decode(Path(clip_path), Path(masks_path)), keep=KEEP_SIGNALS)


def attempt_signals(attempt: AttemptInput) -> ShotSignals:
    """`shot_signals` for one attempt's rendered video."""
    return shot_signals(attempt.video.clip_path, attempt.video.masks_path)


def speaker_stem(audio: ShotAudio, speaker: str, duration: float, sr: int = AUDIO_SR) -> np.ndarray:
    """One character's lines mixed at their starts over the shot: what their mouth should follow."""
    out = np.zeros(int(round(duration * sr)), np.float32)
    for line in audio.lines:
        if line.speaker != speaker:
            continue
        x = read_audio(line.speech.wav_path, sr)
        a = int(round(line.start * sr))
        n = max(0, min(len(x), len(out) - a))
        out[a:a + n] += x[:n]
    return out


def smooth(x: np.ndarray, width: int = 3) -> np.ndarray:
    """Moving average that keeps NaN where the input is NaN."""
    ok = np.isfinite(x)
    k = np.ones(width) / width
    num = np.convolve(np.where(ok, x, 0.0), k, mode="same")
    den = np.convolve(ok.astype(float), k, mode="same")
    out = num / np.maximum(den, 1e-9)
    out[~ok] = np.nan
    return out
