"""`lipsync` evaluator: SyncNet-style audio-visual sync measured from pixels, offline.

For every speaking character visible in the shot, the mouth's aperture (from the decoded frames
inside the character's face box and mask, see `tools.evaluators.signals`) is compared with the loudness
envelope of the character's own speech, both at the video rate. The distance of the
two z-normalised signals is computed for the video shifted by -15..+15 frames; as in SyncNet the
argmin is the audio-visual offset, the minimum the distance (Sync-D-like) and the median minus the
minimum the confidence (Sync-C-like). Two scores per speaker: `lipsync.offset[<id>]` (|offset| in
frames, lower is better; details carry the signed `av_offset` the retry policy re-aligns by) and
`lipsync.confidence[<id>]`.
"""
from __future__ import annotations

import numpy as np

from tools.base import AttemptInput, Score
from tools.evaluators.signals import AUDIO_SR, MIN_MOTION, attempt_signals, speaker_stem
from tools.evaluators.thresholds import thresholds

MAX_OFFSET = 15  # frames searched either way, as SyncNet does at 25 fps


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


def sync_stats(video: np.ndarray, audio: np.ndarray, min_motion: float = MIN_MOTION["mesh"]) -> dict:
    """SyncNet-style summary: `av_offset` (argmin), `distance` (min, Sync-D-like) and
    `confidence` (median minus min, Sync-C-like) over offsets -15..+15 frames."""
    if not np.nanstd(video) >= min_motion:
        # A mouth that never moves has no offset to find; z-normalising it would amplify noise.
        return {"av_offset": 0, "distance": float("nan"), "confidence": 0.0, "still": True}
    offsets, dists = offset_distances(video, audio)
    if not np.isfinite(dists).any():
        return {"av_offset": 0, "distance": float("nan"), "confidence": 0.0}
    i = int(np.nanargmin(dists))
    return {
        "av_offset": int(offsets[i]),
        "distance": float(dists[i]),
        "confidence": float(np.nanmedian(dists) - dists[i]),
        "curve": [None if d != d else round(float(d), 4) for d in dists],
    }


MIN_VISIBLE_FRAMES = 12  # under half a second of visible face says nothing about sync


class LipSyncEvaluator:
    """Offset and confidence of each visible speaker's mouth against their own speech."""

    name = "lipsync"
    slow = True  # starts first on the evaluate node's two threads
    version = "2"  # joins the score cache key: bump when the measure changes

    def __init__(self, offset_threshold: float, confidence_threshold: float):
        self.offset_threshold = offset_threshold
        self.confidence_threshold = confidence_threshold
        self.thresholds = {"lipsync.offset": offset_threshold, "lipsync.confidence": confidence_threshold}

    def evaluate(self, attempt: AttemptInput) -> list[Score]:
        """Score every speaker who is visible long enough; speakers off screen are not judged."""
        if not attempt.audio.lines or not attempt.shot.characters:
            return []
        sig = attempt_signals(attempt)
        scores: list[Score] = []
        speakers = list(dict.fromkeys(line.speaker for line in attempt.audio.lines))
        for cid in speakers:
            k = sig.index(cid)
            if k is None:
                continue
            video = sig.aperture[:, k]
            if (video == video).sum() < MIN_VISIBLE_FRAMES:
                continue
            stem = speaker_stem(attempt.audio, cid, sig.frames / sig.fps, AUDIO_SR)
            audio = envelope(stem, AUDIO_SR, sig.fps, sig.frames)
            stats = sync_stats(video, audio, sig.still_below(k))
            offset = float("nan") if stats.get("still") else float(abs(stats["av_offset"]))
            scores.append(Score(f"lipsync.offset[{cid}]", offset, self.offset_threshold,
                                higher_is_better=False, details=stats))
            scores.append(Score(f"lipsync.confidence[{cid}]", stats["confidence"], self.confidence_threshold,
                                details={k2: v for k2, v in stats.items() if k2 != "curve"}))
        return scores


def create() -> LipSyncEvaluator:
    """Registry factory with the calibrated thresholds."""
    t = thresholds()
    return LipSyncEvaluator(t["lipsync.offset"], t["lipsync.confidence"])
