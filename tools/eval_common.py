"""Signals shared by the evaluators: mouth activity from decoded pixels, audio envelopes at the
video rate, SyncNet-style offset search, and the calibrated thresholds.

Everything is measured from what a viewer gets: the decoded clip's pixels inside each character's
face box (from masks.npz, restricted to the character's own mask pixels so a neighbour never
counts), and each character's own line audio placed at its start in the shot. A clip is decoded
once per attempt however many evaluators ask (`shot_signals` keeps the last few).
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from tools.base import AttemptInput, ShotAudio, ToolError

THRESHOLDS_PATH = Path(__file__).with_name("thresholds.json")
MAX_OFFSET = 15  # frames searched either way, as SyncNet does at 25 fps
AUDIO_SR = 16000
MOUTH_SIZE = (24, 12)  # (w, h) the mouth crop is resampled to, so camera zoom does not matter
FACE_SIZE = 64  # side of the square face crops kept for identity
FACE_SAMPLES = 8  # face crops kept per character over a shot


# ----------------------------------------------------------------------------------- thresholds


def thresholds() -> dict[str, float]:
    """Calibrated thresholds by score family (tools/thresholds.json, written from bench/calibrate.py)."""
    try:
        data = json.loads(THRESHOLDS_PATH.read_text(encoding="utf-8"))
        return {k: float(v) for k, v in data["thresholds"].items()}
    except (OSError, ValueError, KeyError) as exc:
        raise ToolError(f"{THRESHOLDS_PATH}: cannot read the thresholds ({exc})",
                        "restore tools/thresholds.json or rerun `python -m bench.calibrate --write`") from exc


# ---------------------------------------------------------------------------------------- video


@dataclass
class ShotSignals:
    """What the evaluators need from one decoded clip."""

    labels: list[str]  # cast ids, the order of masks.npz
    fps: int
    frames: int
    activity: np.ndarray  # (F, K) mouth motion energy; NaN where the face is not visible
    faces: dict[str, list[np.ndarray]] = field(default_factory=dict)  # gray FACE_SIZE crops

    def index(self, cid: str) -> Optional[int]:
        return self.labels.index(cid) if cid in self.labels else None


def _box_crop(gray: np.ndarray, own: np.ndarray, box, rows: tuple[float, float], cols: tuple[float, float],
              size: tuple[int, int]) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """A sub-box of a face box (fractions of its height/width), resampled to `size` (w, h)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    H, W = gray.shape
    ya, yb = int(round(y0 + rows[0] * h)), int(round(y0 + rows[1] * h))
    xa, xb = int(round(x0 + cols[0] * w)), int(round(x0 + cols[1] * w))
    ya, yb, xa, xb = max(ya, 0), min(yb, H), max(xa, 0), min(xb, W)
    if yb - ya < 2 or xb - xa < 2:
        return None
    pix = cv2.resize(gray[ya:yb, xa:xb], size, interpolation=cv2.INTER_AREA).astype(np.float32)
    mask = cv2.resize(own[ya:yb, xa:xb], size, interpolation=cv2.INTER_NEAREST)
    return pix, mask


# The mouth sits in the lower third of a face box; the eye band is the baseline that camera moves
# and re-encoding move just as much, so subtracting it leaves the mouth's own motion.
MOUTH_ROWS, MOUTH_COLS = (0.62, 0.95), (0.2, 0.8)
EYES_ROWS, EYES_COLS = (0.2, 0.5), (0.15, 0.85)


def _masked_motion(prev, cur) -> float:
    """Mean absolute change over pixels that belong to the character in both frames."""
    if prev is None or cur is None:
        return float("nan")
    both = (prev[1] > 0) & (cur[1] > 0)
    if both.mean() < 0.25:  # mostly hidden behind a neighbour: no reading
        return float("nan")
    return float(np.abs(cur[0] - prev[0])[both].mean())


def _decode(clip_path: Path, masks_path: Path) -> ShotSignals:
    import av

    from tools.media import load_masks

    m = load_masks(masks_path)
    masks, boxes = m["masks"], m["face_boxes"]
    labels = [str(x) for x in m["labels"]]
    K = len(labels)
    with av.open(str(clip_path)) as container:
        stream = container.streams.video[0]
        fps = int(round(float(stream.average_rate or 25)))
        n_hint = stream.frames or len(masks)
        keep = set(np.linspace(0, max(min(n_hint, len(masks)) - 1, 0), FACE_SAMPLES).round().astype(int).tolist())
        rows: list[np.ndarray] = []
        faces: dict[str, list[np.ndarray]] = {c: [] for c in labels}
        prev_mouth: list = [None] * K
        prev_eyes: list = [None] * K
        for t, frame in enumerate(container.decode(video=0)):
            if t >= len(masks):
                break
            gray = frame.to_ndarray(format="gray")
            row = np.full(K, np.nan, np.float32)
            for k in range(K):
                box = boxes[t, k]
                if not np.all(np.isfinite(box)):
                    prev_mouth[k] = prev_eyes[k] = None
                    continue
                own = (masks[t] == k + 1).astype(np.uint8)
                mouth = _box_crop(gray, own, box, MOUTH_ROWS, MOUTH_COLS, MOUTH_SIZE)
                eyes = _box_crop(gray, own, box, EYES_ROWS, EYES_COLS, MOUTH_SIZE)
                motion = _masked_motion(prev_mouth[k], mouth)
                base = _masked_motion(prev_eyes[k], eyes)
                row[k] = motion - (base if base == base else 0.0) if t > 0 else np.nan
                prev_mouth[k], prev_eyes[k] = mouth, eyes
                if t in keep:
                    face = _box_crop(gray, own, box, (0.0, 1.0), (0.0, 1.0), (FACE_SIZE, FACE_SIZE))
                    if face is not None and face[1].mean() > 0.5:
                        faces[labels[k]].append(face[0].astype(np.uint8))
            rows.append(row)
    if not rows:
        raise ToolError(f"{clip_path} has no video frames", "re-render the shot")
    activity = np.stack(rows)
    return ShotSignals(labels=labels, fps=fps, frames=len(rows), activity=activity, faces=faces)


_CACHE: "OrderedDict[tuple, ShotSignals]" = OrderedDict()
_CACHE_LOCK = threading.Lock()


def shot_signals(clip_path: Path, masks_path: Path) -> ShotSignals:
    """Decode a clip once and measure every character's mouth activity and face crops.

    Memoised on the files' paths, sizes and modification times, so the lipsync, binding and
    identity evaluators of one attempt share a single decode.
    """
    key = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in (Path(clip_path), Path(masks_path)))
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    sig = _decode(Path(clip_path), Path(masks_path))
    with _CACHE_LOCK:
        _CACHE[key] = sig
        while len(_CACHE) > 4:
            _CACHE.popitem(last=False)
    return sig


def attempt_signals(attempt: AttemptInput) -> ShotSignals:
    """`shot_signals` for one attempt's rendered video."""
    return shot_signals(attempt.video.clip_path, attempt.video.masks_path)


# ---------------------------------------------------------------------------------------- audio


def load_wav(path: Path, sr: int = AUDIO_SR) -> np.ndarray:
    """A wav (or any audio file) as float32 mono at `sr`."""
    from tools.media import read_audio

    return read_audio(Path(path), sr)


def speaker_stem(audio: ShotAudio, speaker: str, duration: float, sr: int = AUDIO_SR) -> np.ndarray:
    """One character's lines mixed at their starts over the shot: what their mouth should follow."""
    out = np.zeros(int(round(duration * sr)), np.float32)
    for line in audio.lines:
        if line.speaker != speaker:
            continue
        x = load_wav(line.speech.wav_path, sr)
        a = int(round(line.start * sr))
        n = max(0, min(len(x), len(out) - a))
        out[a:a + n] += x[:n]
    return out


def envelope(wav: np.ndarray, sr: int, fps: int, frames: int) -> np.ndarray:
    """Log-RMS loudness per video frame (dB above a floor 50 dB under the peak, >= 0)."""
    hop = sr / fps
    out = np.zeros(frames, np.float32)
    for t in range(frames):
        seg = wav[int(round(t * hop)):int(round((t + 1) * hop))]
        out[t] = np.sqrt(np.mean(seg.astype(np.float64) ** 2)) if len(seg) else 0.0
    db = 20.0 * np.log10(out + 1e-6)
    floor = db.max() - 50.0
    return np.maximum(db, floor) - floor


def audio_feature(env: np.ndarray) -> np.ndarray:
    """What a moving mouth's motion energy follows: how fast the loudness changes."""
    return np.abs(np.diff(env, prepend=env[:1]))


# ------------------------------------------------------------------------------------- sync search


def _znorm(x: np.ndarray) -> np.ndarray:
    sd = np.nanstd(x)
    return (x - np.nanmean(x)) / (sd if sd > 1e-9 else 1.0)


def offset_distances(video: np.ndarray, audio: np.ndarray, max_offset: int = MAX_OFFSET) -> tuple[np.ndarray, np.ndarray]:
    """Mean squared distance of the z-normalised signals for video delayed by each offset.

    Offset k > 0 compares video frame t + k with audio frame t (the mouth moves k frames after the
    sound). Both signals are z-normalised over their overlap, so the distance is 2 * (1 - r).
    """
    offsets = np.arange(-max_offset, max_offset + 1)
    dists = np.full(len(offsets), np.nan)
    n = min(len(video), len(audio))
    for i, k in enumerate(offsets):
        v = video[max(k, 0):n + min(k, 0)]
        a = audio[max(-k, 0):n - max(k, 0)]
        ok = np.isfinite(v) & np.isfinite(a)
        if ok.sum() < 10:
            continue
        dists[i] = float(np.mean((_znorm(v[ok]) - _znorm(a[ok])) ** 2))
    return offsets, dists


def sync_stats(video: np.ndarray, audio: np.ndarray) -> dict:
    """SyncNet-style summary: `av_offset` (argmin), `distance` (min, Sync-D-like) and
    `confidence` (median minus min, Sync-C-like) over offsets -15..+15 frames."""
    offsets, dists = offset_distances(video, audio)
    if not np.isfinite(dists).any():
        return {"av_offset": 0, "distance": float("nan"), "confidence": float("nan")}
    i = int(np.nanargmin(dists))
    return {
        "av_offset": int(offsets[i]),
        "distance": float(dists[i]),
        "confidence": float(np.nanmedian(dists) - dists[i]),
        "curve": [None if d != d else round(float(d), 4) for d in dists],
    }


def smooth(x: np.ndarray, width: int = 3) -> np.ndarray:
    """Moving average that keeps NaN where the input is NaN."""
    ok = np.isfinite(x)
    k = np.ones(width) / width
    num = np.convolve(np.where(ok, x, 0.0), k, mode="same")
    den = np.convolve(ok.astype(float), k, mode="same")
    out = num / np.maximum(den, 1e-9)
    out[~ok] = np.nan
    return out
