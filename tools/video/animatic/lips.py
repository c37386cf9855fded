"""Lips from the speech: per-character mouth tracks (the warp that draws them is in `mouths`).

A track gives, per frame of the shot, the jaw opening (0 closed .. 1 wide) and the lip width
(0.7 rounded .. 1.2 spread). It comes from phoneme timings when the speech tool gave them (visemes),
else from the line's amplitude envelope. Only a character's own lines feed their track, so a mouth
is closed whenever its character is silent; overlapping lines simply fill two tracks.
"""
from __future__ import annotations

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
