"""`binding` evaluator: is the mouth that moves during a line the speaker's, and only theirs?

The most common complaint about multi-speaker talking video is the wrong person talking or
background characters lip-syncing. For each speech span this measures the fraction of frames in
which the speaker's mouth opening (aperture above their own resting mouth, smoothed over 0.2 s,
see `tools.evaluators.signals`) exceeds that of every other visible character who is not speaking
then, over the frames where some mouth is open (a pause binds nothing; a mouth that never opens is
lipsync's failure). Score `binding[<line_id>]`, higher is better; a span with no other visible
character is not judged.

A line whose speaker is not on screen (an `(O.S.)` or `(V.O.)` line, or a speaker the shot does not
show) must move no visible mouth: `binding.offscreen[<line_id>]` is the highest correlation, over
the visible characters not speaking then, between their mouth opening and the line's loudness
(0 for a still mouth); lower is better.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from tools.base import AttemptInput, Score
from tools.evaluators.lipsync import envelope
from tools.evaluators.signals import AUDIO_SR, attempt_signals, smooth, speaker_stem
from tools.evaluators.thresholds import thresholds

SMOOTH_FRAMES = 5  # mouths rest for a few frames between words; judge 0.2 s windows
MOVING = 0.05  # a frame is judged when some mouth opens at least this much (1 = wide open)
MIN_SPAN_FRAMES = 5


def speaking_frames(attempt: AttemptInput, fps: int, frames: int) -> dict[str, np.ndarray]:
    """Per character, which frames fall inside one of their lines."""
    out: dict[str, np.ndarray] = {}
    for line in attempt.audio.lines:
        on = out.setdefault(line.speaker, np.zeros(frames, bool))
        on[int(round(line.start * fps)):int(round(line.end * fps))] = True
    return out


class BindingEvaluator:
    """Fraction of each line's frames in which the speaker's mouth moves most."""

    name = "binding"
    version = "2"  # joins the score cache key: bump when the measure changes

    def __init__(self, threshold: float, offscreen_threshold: float):
        self.threshold = threshold
        self.offscreen_threshold = offscreen_threshold
        self.thresholds = {"binding": threshold, "binding.offscreen": offscreen_threshold}

    def evaluate(self, attempt: AttemptInput) -> list[Score]:
        """One score per line whose speaker and at least one other character are visible."""
        if not attempt.audio.lines or not attempt.shot.characters:
            return []  # nobody speaks, or nobody is on screen: nothing to bind
        sig = attempt_signals(attempt)
        act = np.stack([smooth(sig.opening(k), SMOOTH_FRAMES) for k in range(len(sig.labels))], axis=1)
        speaking = speaking_frames(attempt, sig.fps, sig.frames)
        scores: list[Score] = []
        off_lines = {seg.line_id for seg in attempt.shot.speech if seg.off_screen}
        for line in attempt.audio.lines:
            k = sig.index(line.speaker)
            if k is None or line.line_id in off_lines:
                score = self._offscreen(attempt, sig, act, line)
                if score is not None:
                    scores.append(score)
                continue
            a, b = int(round(line.start * sig.fps)), min(int(round(line.end * sig.fps)), sig.frames)
            wins, judged, loudest_other = 0, 0, {}
            for t in range(a, b):
                if act[t, k] != act[t, k]:
                    continue
                rivals = [j for j, c in enumerate(sig.labels) if j != k and act[t, j] == act[t, j]
                          and not speaking.get(c, np.zeros(sig.frames, bool))[t]]
                if not rivals or max(act[t, k], max(act[t, j] for j in rivals)) < MOVING:
                    continue  # nobody's mouth is open: a pause, nothing to bind
                judged += 1
                top = max(rivals, key=lambda j: act[t, j])
                if act[t, k] > act[t, top]:
                    wins += 1
                else:
                    loudest_other[sig.labels[top]] = loudest_other.get(sig.labels[top], 0) + 1
            if judged < MIN_SPAN_FRAMES:
                continue
            scores.append(Score(f"binding[{line.line_id}]", wins / judged, self.threshold, details={
                "speaker": line.speaker, "frames": judged, "others_moving_most": loudest_other}))
        return scores

    def _offscreen(self, attempt, sig, act, line) -> Score | None:
        """How closely the visible mouths follow a line whose speaker is not on screen."""
        a, b = int(round(line.start * sig.fps)), min(int(round(line.end * sig.fps)), sig.frames)
        if b - a < MIN_SPAN_FRAMES:
            return None
        stem = speaker_stem(replace(attempt.audio, lines=[line]), line.speaker, sig.frames / sig.fps, AUDIO_SR)
        loud = envelope(stem, AUDIO_SR, sig.fps, sig.frames)[a:b]
        others = replace(attempt.audio, lines=[ln for ln in attempt.audio.lines if ln is not line])
        own = speaking_frames(replace(attempt, audio=others), sig.fps, sig.frames)
        follow = {}
        for j, cid in enumerate(sig.labels):
            # Frames where this character speaks a line of their own are that line's business.
            ok = np.isfinite(act[a:b, j]) & ~own.get(cid, np.zeros(sig.frames, bool))[a:b]
            if ok.sum() < MIN_SPAN_FRAMES:
                continue
            m, v = act[a:b, j][ok], loud[ok]
            still = np.std(m) < sig.still_below(j) or np.std(v) < 1e-6
            follow[cid] = 0.0 if still else float(np.corrcoef(m, v)[0, 1])
        if not follow:
            return None
        most = max(follow, key=follow.get)
        return Score(f"binding.offscreen[{line.line_id}]", max(0.0, follow[most]), self.offscreen_threshold,
                     higher_is_better=False, details={"speaker": line.speaker, "frames": b - a, "most": most,
                                                      "follows": {c: round(r, 3) for c, r in follow.items()}})


def create() -> BindingEvaluator:
    """Registry factory with the calibrated thresholds."""
    t = thresholds()
    return BindingEvaluator(t["binding"], t["binding.offscreen"])
