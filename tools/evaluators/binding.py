"""`binding` evaluator: is the mouth that moves during a line the speaker's, and only theirs?

The most common complaint about multi-speaker talking video is the wrong person talking or
background characters lip-syncing. For each speech span this measures the fraction of frames in
which the speaker's mouth opening (aperture above their own resting mouth, smoothed over 0.2 s,
see `tools.evaluators.signals`) exceeds that of every other visible character who is not speaking then. Score `binding[<line_id>]`,
higher is better; a span with no other visible character is not judged.
"""
from __future__ import annotations

import numpy as np

from tools.base import AttemptInput, Score
from tools.evaluators.signals import attempt_signals, smooth
from tools.evaluators.thresholds import thresholds

SMOOTH_FRAMES = 5  # mouths rest for a few frames between words; judge 0.2 s windows
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
    version = "1"  # joins the score cache key: bump when the measure changes

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.thresholds = {"binding": threshold}

    def evaluate(self, attempt: AttemptInput) -> list[Score]:
        """One score per line whose speaker and at least one other character are visible."""
        if not attempt.audio.lines or not attempt.shot.characters:
            return []  # nobody speaks, or nobody is on screen: nothing to bind
        sig = attempt_signals(attempt)
        act = np.stack([smooth(sig.opening(k), SMOOTH_FRAMES) for k in range(len(sig.labels))], axis=1)
        speaking = speaking_frames(attempt, sig.fps, sig.frames)
        scores: list[Score] = []
        for line in attempt.audio.lines:
            k = sig.index(line.speaker)
            if k is None:
                continue
            a, b = int(round(line.start * sig.fps)), min(int(round(line.end * sig.fps)), sig.frames)
            wins, judged, loudest_other = 0, 0, {}
            for t in range(a, b):
                if act[t, k] != act[t, k]:
                    continue
                rivals = [j for j, c in enumerate(sig.labels) if j != k and act[t, j] == act[t, j]
                          and not speaking.get(c, np.zeros(sig.frames, bool))[t]]
                if not rivals:
                    continue
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


def create() -> BindingEvaluator:
    """Registry factory with the calibrated threshold."""
    return BindingEvaluator(thresholds()["binding"])
