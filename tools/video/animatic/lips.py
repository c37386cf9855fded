"""Lips from the speech: per-character mouth tracks, and the lower-face warp that draws them.

A track gives, per frame of the shot, the jaw opening (0 closed .. 1 wide) and the lip width
(0.7 rounded .. 1.2 spread). It comes from phoneme timings when the speech tool gave them (visemes),
else from the line's amplitude envelope. Only a character's own lines feed their track, so a mouth
is closed whenever its character is silent; overlapping lines simply fill two tracks.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from tools.base import ShotAudio, SpeechResult
from tools.media.audio import read_audio

ENV_SR = 16000
ENV_RANGE_DB = 30.0  # the envelope maps the loudest 30 dB of a line onto 0..1
COARTICULATION_SIGMA = 0.9  # frames: neighbouring visemes blend (symmetric, so no lag)

# (jaw opening, lip width) per phoneme class; labels may be IPA (espeak/piper) or ARPAbet.
VISEMES = {
    "closed": (0.0, 1.0), "labiodental": (0.15, 1.05), "open": (0.95, 1.05), "mid": (0.6, 1.1),
    "spread": (0.4, 1.2), "round": (0.5, 0.72), "consonant": (0.3, 1.0), "silence": (0.0, 1.0),
}
_CLASSES = [
    ("silence", ("", "_", "sil", "sp", "spn", "pau", "^", "$", "#", " ", ",", ".", "!", "?", ";", ":")),
    ("closed", ("p", "b", "m")),
    ("labiodental", ("f", "v")),
    ("round", ("o", "ɔ", "u", "ʊ", "w", "ow", "oy", "uw", "uh", "ɒ", "ø", "y", "ʏ")),
    ("open", ("a", "ɑ", "æ", "ʌ", "ɐ", "aa", "ae", "ah", "ay", "aw", "ɶ")),
    ("spread", ("i", "ɪ", "iy", "ih", "j")),
    ("mid", ("e", "ɛ", "ə", "ɜ", "ɚ", "ɝ", "eh", "er", "ey", "ax")),
]


def viseme(label: str) -> tuple[float, float]:
    """(jaw opening, lip width) for one phoneme label."""
    key = label.strip().lower().strip("ˈˌː0123456789")
    for cls, labels in _CLASSES:
        if key in labels:
            return VISEMES[cls]
    for cls, labels in _CLASSES[1:]:  # multi-character IPA like "aɪ": classify by the first symbol
        if key[:1] in labels:
            return VISEMES[cls]
    return VISEMES["consonant"]


def _smooth(x: np.ndarray) -> np.ndarray:
    if len(x) < 3:
        return x
    k = np.exp(-0.5 * (np.arange(-3, 4) / COARTICULATION_SIGMA) ** 2)
    return np.convolve(np.pad(x, 3, mode="edge"), k / k.sum(), mode="valid")


def frame_envelope(samples: np.ndarray, sr: int, times: np.ndarray, fps: int) -> np.ndarray:
    """RMS over one frame's duration centred at each of `times` (seconds), 0 outside the audio."""
    c = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])
    half = sr / fps / 2
    lo = np.clip(np.round(times * sr - half), 0, len(samples)).astype(np.int64)
    hi = np.clip(np.round(times * sr + half), 0, len(samples)).astype(np.int64)
    n = np.maximum(hi - lo, 1)
    return np.sqrt((c[hi] - c[lo]) / n).astype(np.float32)


def _envelope_opening(speech: SpeechResult, times: np.ndarray, fps: int) -> np.ndarray:
    samples = read_audio(speech.wav_path, ENV_SR)
    rms = frame_envelope(samples, ENV_SR, times, fps)
    db = 20 * np.log10(rms + 1e-7)
    if not (rms > 1e-5).any():
        return np.zeros_like(rms)
    peak = float(np.percentile(db[rms > 1e-5], 95))
    return np.clip((db - (peak - ENV_RANGE_DB)) / ENV_RANGE_DB, 0.0, 1.0) ** 1.3


def _phoneme_track(speech: SpeechResult, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    opening, width = np.zeros(len(times), np.float32), np.ones(len(times), np.float32)
    starts = np.array([p.start for p in speech.phonemes])
    for i, t in enumerate(times):
        j = int(np.searchsorted(starts, t, side="right")) - 1
        if j >= 0 and t < speech.phonemes[j].end:
            opening[i], width[i] = viseme(speech.phonemes[j].label)
    return opening, width


def mouth_tracks(audio: ShotAudio, characters: list[str], frames: int, fps: int,
                 offset_frames: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per character: (opening, width) arrays of length `frames`, from that character's lines only.

    `offset_frames` > 0 makes the mouth move later than the audio (the re-alignment knob).
    """
    centres = (np.arange(frames) + 0.5) / fps
    tracks = {c: (np.zeros(frames, np.float32), np.ones(frames, np.float32)) for c in characters}
    for line in audio.lines:
        if line.speaker not in tracks:
            continue
        inside = (centres >= line.start) & (centres < line.end)
        if not inside.any():
            continue
        local = centres[inside] - line.start
        if line.speech.phonemes:
            o, w = _phoneme_track(line.speech, local)
        else:
            o, w = _envelope_opening(line.speech, local, fps), np.ones(len(local), np.float32)
        opening, width = tracks[line.speaker]
        # Overlapping lines of one speaker: the louder drives the mouth.
        opening[inside] = np.maximum(opening[inside], o)
        width[inside] = np.where(o > 0, w, width[inside])
    out = {}
    for c, (o, w) in tracks.items():
        o, w = _smooth(o), _smooth(w)
        if offset_frames:
            o, w = _shift(o, offset_frames, 0.0), _shift(w, offset_frames, 1.0)
        out[c] = (np.clip(o, 0, 1).astype(np.float32), w.astype(np.float32))
    return out


def _shift(x: np.ndarray, k: int, fill: float) -> np.ndarray:
    y = np.full_like(x, fill)
    if k > 0:
        y[k:] = x[:-k] if k < len(x) else y[k:]
    else:
        y[:k] = x[-k:] if -k < len(x) else y[:k]
    return y


@dataclass
class MouthRig:
    """The lower-face warp for one sprite at its staged size: rect in sprite pixels + fixed grids."""

    rect: tuple[int, int, int, int]  # x0, y0, x1, y1 in sprite pixels
    mouth: tuple[float, float]  # mouth centre within the rect
    half_width: float  # half the lip width in pixels
    jaw: float  # jaw drop in pixels at full opening
    falloff: np.ndarray  # (h, w) float32: how much of the jaw drop each pixel follows
    upper: np.ndarray  # (h, w) float32: how much each pixel follows the upper lip's lift
    gx: np.ndarray
    gy: np.ndarray


def _mouth_line(gray: np.ndarray, face: tuple[float, float, float, float]) -> float:
    """The darkest row between nose and chin near the face's centre line: the lip gap."""
    x, y, w, h = face
    y0, y1 = int(y + 0.72 * h), int(y + 0.93 * h)
    x0, x1 = int(x + 0.38 * w), int(x + 0.62 * w)
    band = gray[max(0, y0):max(1, min(gray.shape[0], y1)), max(0, x0):max(1, x1)]
    if band.shape[0] < 3 or band.shape[1] < 1:
        return y + 0.78 * h
    rows = np.convolve(band.mean(axis=1), np.ones(3) / 3, mode="same")
    # A mild prior toward 0.78 h keeps a dark beard or shadow from winning by a small margin.
    prior = ((np.arange(len(rows)) + y0 - (y + 0.78 * h)) / h) ** 2 * 400
    return float(y0 + np.argmin(rows[1:-1] + prior[1:-1]) + 1)


def build_rig(rgb: np.ndarray, face: tuple[float, float, float, float]) -> MouthRig:
    """Prepare the mouth warp for a sprite whose face box (x, y, w, h) is given in its pixels."""
    x, y, w, h = face
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    my = _mouth_line(gray, face)
    cx = x + w / 2
    x0, x1 = int(max(0, cx - 0.36 * w)), int(min(rgb.shape[1], cx + 0.36 * w))
    y0, y1 = int(max(0, my - 0.2 * h)), int(min(rgb.shape[0], my + 0.42 * h))
    ph, pw = max(1, y1 - y0), max(1, x1 - x0)
    gy, gx = np.mgrid[0:ph, 0:pw].astype(np.float32)
    mx, mly = cx - x0, my - y0
    across = np.clip(1 - ((gx - mx) / (0.36 * w)) ** 2, 0, 1)  # 1 on the centre line, 0 at sides
    below = np.clip((gy - mly) / max(1.0, ph - mly), 0, 1)
    falloff = np.where(gy >= mly, (1 - below) ** 0.7, 0).astype(np.float32) * across
    above = np.clip((mly - gy) / max(1.0, mly), 0, 1)
    upper = np.where(gy < mly, 1 - above, 0).astype(np.float32) * across
    return MouthRig((x0, y0, x1, y1), (mx, mly), 0.19 * w, 0.11 * h, falloff, upper, gx, gy)


def draw_mouth(rig: MouthRig, patch: np.ndarray, opening: float, width: float) -> np.ndarray:
    """Warp a lower-face patch (from the sprite at `rig.rect`) to the given mouth shape."""
    if opening <= 0.01:
        return patch
    drop = rig.jaw * opening
    lift = 0.12 * drop
    # remap pulls from the source: pixels below the lips show what was `drop` px higher.
    map_y = rig.gy - drop * rig.falloff + lift * rig.upper
    out = cv2.remap(patch, rig.gx, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mx, my = rig.mouth
    aw = max(1, int(rig.half_width * width * (0.85 + 0.25 * opening)))
    ah = max(1, int(drop * 0.42))
    cy = int(my + drop * 0.45 - lift * 0.5)
    hole = np.zeros(out.shape[:2], np.float32)
    cv2.ellipse(hole, (int(mx), cy), (aw, ah), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    hole = cv2.GaussianBlur(hole, (0, 0), max(0.8, ah * 0.15))[..., None]
    inside = np.full_like(out, (45, 18, 20), dtype=np.float32)
    if opening > 0.5 and ah >= 4:  # a hint of upper teeth in a wide-open mouth
        teeth = np.zeros(out.shape[:2], np.float32)
        cv2.ellipse(teeth, (int(mx), cy - ah + ah // 4), (int(aw * 0.6), max(1, ah // 4)), 0, 0, 360,
                    0.8, -1, cv2.LINE_AA)
        inside = inside * (1 - teeth[..., None]) + np.float32(190) * teeth[..., None]
    return (out * (1 - hole) + inside * hole).astype(np.uint8)
