"""lipsync on real animatic clips: in sync passes; mouths 4 or 8 frames late and swapped speakers fail."""
import json

import numpy as np
import pytest

from tests.fixtures.evalkit import controls  # noqa: F401 (a fixture)
from tools.evaluators.lipsync import LipSyncEvaluator, create, sync_stats
from tools.evaluators.thresholds import THRESHOLDS_PATH


def _scores(controls, name):
    return {s.name: s for s in create().evaluate(controls[name])}


def test_in_sync_clip_passes_for_every_speaker(controls):
    scores = _scores(controls, "positive")
    assert set(scores) == {"lipsync.offset[collins]", "lipsync.confidence[collins]",
                           "lipsync.offset[hopper]", "lipsync.confidence[hopper]"}
    for s in scores.values():
        assert s.passed, (s.name, s.value, s.details)


@pytest.mark.parametrize("shift", [4, 8])
def test_late_mouths_fail_with_the_measured_offset(controls, shift):
    scores = _scores(controls, f"offset{shift}")
    for cid in ("collins", "hopper"):
        s = scores[f"lipsync.offset[{cid}]"]
        assert not s.passed
        # the positive measures within one frame of 0, so the shift shows up within a frame
        assert abs(s.details["av_offset"] - shift) <= 1


def test_swapped_speakers_fail(controls):
    scores = _scores(controls, "swap")
    for cid in ("collins", "hopper"):
        off, conf = scores[f"lipsync.offset[{cid}]"], scores[f"lipsync.confidence[{cid}]"]
        assert not (off.passed and conf.passed), (off.value, conf.value)


def test_silent_speaker_fails(controls):
    # The first line's speaker (collins) is drawn with a shut mouth: a still mouth follows nothing.
    scores = _scores(controls, "silent")
    conf = scores["lipsync.confidence[collins]"]
    assert not conf.passed and conf.details["still"], (conf.value, conf.details)
    assert scores["lipsync.confidence[hopper]"].passed  # the other line is untouched


def test_sync_search_recovers_a_known_shift():
    rng = np.random.default_rng(0)
    audio = np.convolve(rng.random(150), np.ones(3) / 3, mode="same")
    video = np.roll(audio, 5)  # the mouth moves 5 frames after the sound
    video[:5] = audio[0]
    stats = sync_stats(video, audio)
    assert stats["av_offset"] == 5 and stats["distance"] < 0.05 and stats["confidence"] > 1.0


def test_still_mouth_has_no_confidence():
    stats = sync_stats(np.full(80, 0.02), np.random.default_rng(1).random(80))
    assert stats["confidence"] == 0.0 and stats["still"]


def test_the_calibrated_thresholds_decide_the_verdict(controls):
    """The registry's evaluator judges against the numbers in thresholds.json (read here from the
    file itself); with a bar at the measured offset, the same measurement passes."""
    calibrated = json.loads(THRESHOLDS_PATH.read_text())["thresholds"]
    late = [s for s in create().evaluate(controls["offset4"]) if s.name.startswith("lipsync.offset")]
    assert len(late) == 2
    for s in late:
        assert s.threshold == calibrated["lipsync.offset"] and s.value > s.threshold and not s.passed
    lenient = LipSyncEvaluator(offset_threshold=max(s.value for s in late),
                               confidence_threshold=calibrated["lipsync.confidence"])
    again = {s.name: s for s in lenient.evaluate(controls["offset4"])}
    for s in late:
        assert again[s.name].value == s.value and again[s.name].passed


def test_retry_policy_realigns_a_late_clip_until_it_passes(controls, tmp_path):
    """The decide loop in miniature: score, plan_retry, re-render with the new knobs, score."""
    from orchestrator.retry import plan_retry, verdict
    from tests.fixtures.evalkit import render
    from tools.base import SpeechKnobs, VideoKnobs

    ev = create()
    late = controls["offset8"]
    scores = ev.evaluate(late)
    assert verdict(all(s.passed for s in scores), 1, False) == "retry"
    _, video, changes, reason = plan_retry(scores, SpeechKnobs(), VideoKnobs(offset_frames=8), 1, take_noise=0.3, audio_guidance=None)
    assert "video.offset_frames" in changes and "re-aligning" in reason
    # The knob moves by a shift that leaves each speaker's measured offset within a frame of 0.
    measured = [s.details["av_offset"] for s in scores if s.name.startswith("lipsync.offset")]
    shift = 8 - video.offset_frames
    assert all(abs(m - 8) <= 1 for m in measured) and all(abs(m - shift) <= 1 for m in measured)
    again = render(late.shot, late.scene, late.audio, late.cast, tmp_path, video)
    rescored = ev.evaluate(again)
    assert all(s.passed for s in rescored), [(s.name, s.value) for s in rescored]
    assert all(abs(s.details["av_offset"]) <= 1 for s in rescored if s.name.startswith("lipsync.offset"))
    assert verdict(all(s.passed for s in rescored), 2, False) == "accepted_after_retry"
