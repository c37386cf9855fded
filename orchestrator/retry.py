"""Retry policy: which knobs to change when a shot's scores fail, and which attempt to keep.

The decide node scores an attempt, then asks `verdict` whether to stop; if not, `plan_retry` maps
every failing score to knob changes for the next attempt (and says why), and at the end `quality`
picks the best attempt when none passed. Attempts are numbered from 1.

Score names follow `family[subject]` ("lipsync.offset[hopper]", "wer[sc01_l02]"); the family picks
the remedy, the details (for lipsync, the measured signed `av_offset`) size it.
"""
from __future__ import annotations

import math
from dataclasses import replace

from tools.base import Score, SpeechKnobs, VideoKnobs

# How much each family counts when picking the best attempt: the seeds' complaints are mostly
# wrong-speaker and out-of-sync mouths, so those weigh most.
WEIGHTS = {
    "lipsync": 2.0,
    "binding": 2.0,
    "speaker": 1.5,
    "wer": 1.0,
    "identity": 1.0,
}
DEFAULT_WEIGHT = 1.0

MAX_DILATION = 24  # pixels; beyond this a router mask swallows the neighbour
MAX_AUDIO_GUIDANCE = 12.0  # VauCustom guides audio at 9; a retry may go a little past it
MIN_RATE = 0.8  # slower speech helps ASR, but below this it sounds unnatural


def family(score_name: str) -> str:
    """The evaluator family of a score name: "lipsync.offset[red]" -> "lipsync"."""
    return score_name.split("[", 1)[0].split(".", 1)[0]


def _margin(score: Score) -> float:
    """Signed distance past the threshold, scaled to about [-1, 1]; NaN counts as a full fail."""
    if score.value != score.value:
        return -1.0
    scale = max(abs(score.threshold), 1e-3)
    m = (score.value - score.threshold) / scale
    if not score.higher_is_better:
        m = -m
    return max(-1.0, min(1.0, m))


def quality(scores: list[Score]) -> float:
    """Weighted quality of one attempt in [0, 1]: passing counts most, then the margin.

    Each score contributes 0.75 if it passes plus 0.25 times its clipped margin mapped to [0, 1],
    so a passing attempt always beats a failing one on the same score, and among failing attempts
    the one closer to its thresholds wins.
    """
    if not scores:
        return 1.0
    total = weight_sum = 0.0
    for s in scores:
        w = WEIGHTS.get(family(s.name), DEFAULT_WEIGHT)
        total += w * (0.75 * s.passed + 0.25 * (_margin(s) + 1.0) / 2.0)
        weight_sum += w
    return total / weight_sum


def verdict(passed: bool, attempt: int, exhausted: bool) -> str:
    """"accepted", "accepted_after_retry", "best_effort" (budget spent) or "retry"."""
    if passed:
        return "accepted" if attempt <= 1 else "accepted_after_retry"
    return "best_effort" if exhausted else "retry"


def _lipsync_offset(scores: list[Score]) -> tuple[int, int] | None:
    """(the worst failing lipsync offset, the shift that re-aligns the shot's mouths), or None where no offset
    fails. The mouths of a shot move together, so the shift is chosen over every speaker measured (their signed
    `av_offset`): of the shifts that bring the worst one within its threshold, the one that leaves the most
    speakers within theirs, then the least largest offset, then the smallest move. Two speakers measured 8 and
    9 frames late are shifted by 8 (offsets 0 and 1), not 9: a speaker a frame early can read as far off where
    its sync curve has a second dip (a short line's rhythm), so the smaller move is the safer one."""
    measured = [s for s in scores if s.name.startswith("lipsync.offset") and s.value == s.value]  # still: nan
    failing = [s for s in measured if not s.passed]
    if not failing:
        return None
    worst = max(failing, key=lambda s: abs(s.details.get("av_offset", 0)))
    w, reach = int(worst.details.get("av_offset", 0)), int(worst.threshold)
    offsets = [(int(s.details.get("av_offset", 0)), s.threshold) for s in measured]

    def cost(shift: int) -> tuple[int, int, int]:
        return (-sum(abs(o - shift) <= t for o, t in offsets), max(abs(o - shift) for o, _ in offsets),
                abs(shift))

    return w, min(range(w - reach, w + reach + 1), key=cost)


def plan_retry(
    scores: list[Score],
    speech: SpeechKnobs,
    video: VideoKnobs,
    attempt: int,
    *,
    take_noise: float,
    audio_guidance: float | None,
) -> tuple[SpeechKnobs, VideoKnobs, dict, str]:
    """Knobs for the attempt after `attempt`, the changes as {"speech.x": [old, new]}, and why.

    Remedies by failing family:
    - lipsync offset: shift the mouths by the measured offset (the renderer's re-alignment knob);
      lipsync confidence without an offset: new video seed (diffusion: stronger audio guidance).
    - binding (the wrong mouth moves): wider router masks and a new video seed (diffusion:
      stronger audio guidance, which the router mask confines to the speaker).
    - speaker similarity: full voice matching, new speech seed, less synthesis noise.
    - intelligibility (WER): slower speech, no synthesis noise, new speech seed.
    - identity: new video seed.

    The backends say what they support: `take_noise` is the speech backend's synthesis noise for a
    fresh take, `audio_guidance` the video backend's default audio-guidance scale (None when it has
    no audio guidance to raise).
    """
    failing = [s for s in scores if not s.passed]
    families = {family(s.name) for s in failing}
    new_speech, new_video = replace(speech), replace(video)
    why: list[str] = []
    diffusion = audio_guidance is not None

    def note(names: set[str], text: str) -> None:
        shown = ", ".join(sorted(s.name for s in failing if family(s.name) in names))
        why.append(f"{shown} failed: {text}")

    offset = _lipsync_offset(scores)
    if offset and offset[1]:
        new_video.offset_frames = video.offset_frames - offset[1]
        note({"lipsync"}, f"mouths {offset[0]:+d} frames off the audio, re-aligning"
             + (f" by {offset[1]:+d} (the other speakers' offsets)" if offset[1] != offset[0] else ""))
    elif "lipsync" in families:
        new_video.seed = video.seed + 1
        if diffusion:
            new_video.audio_guidance = min(MAX_AUDIO_GUIDANCE, (video.audio_guidance or audio_guidance) + 1.5)
        note({"lipsync"}, "weak sync, new video seed" + (" and stronger audio guidance" if diffusion else ""))
    if "binding" in families:
        new_video.mask_dilation = min(MAX_DILATION, video.mask_dilation + 8)
        new_video.seed = video.seed + 1
        if diffusion:
            new_video.audio_guidance = min(MAX_AUDIO_GUIDANCE, (video.audio_guidance or audio_guidance) + 1.5)
        note({"binding"}, "another character's mouth moves with the speech, widening masks")
    if "speaker" in families:
        new_speech.matching_strength = 1.0
        new_speech.seed = speech.seed + 1
        # Without synthesis noise a new seed gives the same take; a little noise makes a new one.
        new_speech.noise = round(speech.noise * 0.5, 4) if speech.noise > 0 else take_noise
        note({"speaker"}, "voice not close enough to the reference, full matching and a new take")
    if "wer" in families:
        new_speech.rate = max(MIN_RATE, round(speech.rate * 0.9, 4))
        new_speech.noise = 0.0
        new_speech.seed = speech.seed + 1
        note({"wer"}, "words not understood, slower and cleaner speech")
    if "identity" in families:
        new_video.seed = video.seed + 1
        note({"identity"}, "face drifts from the reference, new video seed")
    if failing and not why:
        # A family the policy does not know: a fresh take of both tools is the only honest move.
        new_speech.seed, new_video.seed = speech.seed + 1, video.seed + 1
        note({family(s.name) for s in failing}, "no specific remedy, new seeds")
    changes = _diff("speech", speech, new_speech) | _diff("video", video, new_video)
    reason = "; ".join(why) if why else f"attempt {attempt} passed"
    return new_speech, new_video, changes, reason


def _diff(prefix: str, old, new) -> dict:
    """{"prefix.field": [old, new]} for every field that changed."""
    a, b = old.as_dict(), new.as_dict()
    out = {}
    for key in a:
        if a[key] != b[key] and not (_isnan(a[key]) and _isnan(b[key])):
            out[f"{prefix}.{key}"] = [a[key], b[key]]
    return out


def _isnan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)
