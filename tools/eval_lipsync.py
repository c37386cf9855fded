"""`lipsync` evaluator: SyncNet-style audio-visual sync measured from pixels, offline.

For every speaking character visible in the shot, the mouth's aperture (from the decoded frames
inside the character's face box and mask, see `tools.eval_common`) is compared with the loudness
envelope of the character's own speech, both at the video rate. The distance of the
two z-normalised signals is computed for the video shifted by -15..+15 frames; as in SyncNet the
argmin is the audio-visual offset, the minimum the distance (Sync-D-like) and the median minus the
minimum the confidence (Sync-C-like). Two scores per speaker: `lipsync.offset[<id>]` (|offset| in
frames, lower is better; details carry the signed `av_offset` the retry policy re-aligns by) and
`lipsync.confidence[<id>]`.
"""
from __future__ import annotations

from orchestrator.spec import RenderConfig
from tools.base import AttemptInput, Score
from tools.eval_common import AUDIO_SR, attempt_signals, envelope, speaker_stem, sync_stats, thresholds

MIN_VISIBLE_FRAMES = 12  # under half a second of visible face says nothing about sync


class LipSyncEvaluator:
    """Offset and confidence of each visible speaker's mouth against their own speech."""

    name = "lipsync"
    version = "1"  # joins the score cache key: bump when the measure changes

    def __init__(self, offset_threshold: float, confidence_threshold: float):
        self.offset_threshold = offset_threshold
        self.confidence_threshold = confidence_threshold
        self.thresholds = {"lipsync.offset": offset_threshold, "lipsync.confidence": confidence_threshold}

    def evaluate(self, attempt: AttemptInput) -> list[Score]:
        """Score every speaker who is visible long enough; speakers off screen are not judged."""
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
            stats = sync_stats(video, audio)
            offset = float("nan") if stats.get("still") else float(abs(stats["av_offset"]))
            scores.append(Score(f"lipsync.offset[{cid}]", offset, self.offset_threshold,
                                higher_is_better=False, details=stats))
            scores.append(Score(f"lipsync.confidence[{cid}]", stats["confidence"], self.confidence_threshold,
                                details={k2: v for k2, v in stats.items() if k2 != "curve"}))
        return scores


def from_config(render_config: RenderConfig) -> LipSyncEvaluator:
    """Registry factory with the calibrated thresholds."""
    t = thresholds()
    return LipSyncEvaluator(t["lipsync.offset"], t["lipsync.confidence"])
