"""Retry policy: failing scores map to the right knob changes, verdicts, and best-attempt choice."""
from orchestrator.retry import family, plan_retry, quality, verdict
from tools.base import Score, SpeechKnobs, VideoKnobs

# What the backends declare: piper's fresh-take noise, and whether (and from where) the video backend
# has audio guidance to raise.
ANIMATIC = {"take_noise": 0.3, "audio_guidance": None}
DIFFUSION = {"take_noise": 0.3, "audio_guidance": 4.0}


def _offset(value, av_offset, threshold=1.0, who="hopper"):
    return Score(f"lipsync.offset[{who}]", float(value), threshold, higher_is_better=False,
                 details={"av_offset": av_offset})


def test_family_of_score_names():
    assert family("lipsync.offset[hopper]") == "lipsync"
    assert family("wer[sc01_l02]") == "wer"
    assert family("speaker.margin[sc01_l02]") == "speaker"
    assert family("binding") == "binding"


def test_lipsync_offset_realigns_by_measured_offset():
    speech, video = SpeechKnobs(), VideoKnobs(offset_frames=0)
    s2, v2, changes, reason = plan_retry([_offset(8, 8)], speech, video, 1, **ANIMATIC)
    assert v2.offset_frames == -8
    assert changes == {"video.offset_frames": [0, -8]}
    assert s2 == speech  # speech untouched
    assert "lipsync.offset[hopper]" in reason and "+8" in reason


def _shift(*av_offsets, threshold=1.0) -> int:
    """The re-alignment `plan_retry` gives a shot whose speakers are measured at `av_offsets`."""
    scores = [_offset(abs(o), o, threshold, f"c{k}") for k, o in enumerate(av_offsets)]
    return -plan_retry(scores, SpeechKnobs(), VideoKnobs(), 1, **ANIMATIC)[1].offset_frames


def test_the_shift_is_chosen_over_every_speaker_of_the_shot():
    """Worked by hand: every speaker within the threshold where a shift can do it, the least largest offset
    left, then the smaller move; a still mouth (nan) and a passing one count."""
    assert _shift(8) == 8 and _shift(-3) == -3 and _shift(2) == 2  # one speaker: its offset, as before
    assert _shift(8, 9) == 8  # offsets 0 and 1 (the worst's own 9 leaves -1 and 0: as good, a longer move)
    assert _shift(9, 8) == 8 and _shift(-9, -8) == -8
    assert _shift(8, 10) == 9  # both within one frame only there
    assert _shift(8, 0) == 7  # no shift serves both: the worst within reach, the other left least far
    assert _shift(6, 3, threshold=2.0) == 4  # 2 and -1: both pass; 5 (1 and -2) as well, a longer move
    still = Score("lipsync.offset[c9]", float("nan"), 1.0, higher_is_better=False, details={"av_offset": 0})
    scores = [_offset(8, 8, who="a"), _offset(9, 9, who="b"), still]
    _, video, _, why = plan_retry(scores, SpeechKnobs(), VideoKnobs(), 1, **ANIMATIC)
    assert video.offset_frames == -8 and "+9 frames off the audio, re-aligning by +8" in why


def test_offset_correction_accumulates_over_attempts():
    _, v2, _, _ = plan_retry([_offset(3, -3)], SpeechKnobs(), VideoKnobs(offset_frames=-8), 2, **ANIMATIC)
    assert v2.offset_frames == -5


def test_weak_sync_on_diffusion_raises_audio_guidance():
    conf = Score("lipsync.confidence[hopper]", 0.1, 0.5)
    _, v2, changes, _ = plan_retry([conf], SpeechKnobs(), VideoKnobs(seed=3), 1, **DIFFUSION)
    assert v2.seed == 4 and v2.audio_guidance == 5.5  # the backend's default, one step up
    assert changes == {"video.seed": [3, 4], "video.audio_guidance": [None, 5.5]}
    _, v4, _, _ = plan_retry([conf], SpeechKnobs(), VideoKnobs(audio_guidance=11.5), 2, **DIFFUSION)
    assert v4.audio_guidance == 12.0  # capped
    _, v5, _, _ = plan_retry([conf], SpeechKnobs(), VideoKnobs(), 1, take_noise=0.3, audio_guidance=7.0)
    assert v5.audio_guidance == 8.5  # starts from what the backend declares, not a constant
    _, v3, changes3, _ = plan_retry([conf], SpeechKnobs(), VideoKnobs(seed=3), 1, **ANIMATIC)
    assert v3.audio_guidance is None and changes3 == {"video.seed": [3, 4]}


def test_speaker_and_wer_failures_change_speech_knobs():
    fails = [
        Score("speaker.margin[sc01_l01]", -0.05, 0.0),
        Score("wer[sc01_l01]", 0.6, 0.35, higher_is_better=False),
    ]
    speech = SpeechKnobs(seed=0, rate=1.0, noise=0.5, matching_strength=0.6)
    s2, v2, changes, reason = plan_retry(fails, speech, VideoKnobs(), 1, **ANIMATIC)
    assert s2.seed == 1 and s2.noise == 0.0 and s2.rate == 0.9 and s2.matching_strength == 1.0
    assert v2 == VideoKnobs()
    assert changes["speech.rate"] == [1.0, 0.9]
    assert "speaker.margin[sc01_l01]" in reason and "wer[sc01_l01]" in reason


def test_speaker_failure_without_noise_makes_a_different_take():
    fail = Score("speaker.similarity[sc01_l01]", 0.6, 0.7)
    s2, _, changes, _ = plan_retry([fail], SpeechKnobs(seed=0, noise=0.0), VideoKnobs(), 1, **ANIMATIC)
    assert s2.seed == 1 and s2.noise == 0.3 and changes["speech.noise"] == [0.0, 0.3]
    s3, _, changes3, _ = plan_retry([fail], SpeechKnobs(seed=0, noise=0.0), VideoKnobs(), 1,
                                    take_noise=0.0, audio_guidance=None)
    assert s3.seed == 1 and s3.noise == 0.0 and "speech.noise" not in changes3  # a backend that samples anyway


def test_rate_never_drops_below_floor():
    fail = Score("wer[x]", 0.9, 0.35, higher_is_better=False)
    speech = SpeechKnobs(rate=0.8)
    s2, _, changes, _ = plan_retry([fail], speech, VideoKnobs(), 3, **ANIMATIC)
    assert s2.rate == 0.8 and "speech.rate" not in changes


def test_binding_widens_masks_with_cap():
    fail = Score("binding[sc01_l01]", 0.2, 0.6)
    _, v2, changes, _ = plan_retry([fail], SpeechKnobs(), VideoKnobs(mask_dilation=20), 1, **ANIMATIC)
    assert v2.mask_dilation == 24 and changes["video.mask_dilation"] == [20, 24]


def test_all_passing_changes_nothing():
    ok = [Score("identity[collins]", 0.9, 0.5), _offset(0, 0)]
    s2, v2, changes, reason = plan_retry(ok, SpeechKnobs(), VideoKnobs(), 1, **ANIMATIC)
    assert changes == {} and "passed" in reason


def test_unknown_family_gets_new_seeds():
    s2, v2, changes, _ = plan_retry([Score("aesthetic", 0.1, 0.5)], SpeechKnobs(), VideoKnobs(), 1, **ANIMATIC)
    assert set(changes) == {"speech.seed", "video.seed"}


def test_verdicts():
    assert verdict(True, 1, False) == "accepted"
    assert verdict(True, 2, False) == "accepted_after_retry"
    assert verdict(True, 3, True) == "accepted_after_retry"
    assert verdict(False, 1, False) == "retry"
    assert verdict(False, 3, True) == "best_effort"


def test_quality_prefers_passing_then_closer_to_threshold():
    passing = [Score("binding[a]", 0.9, 0.6), _offset(0, 0)]
    near = [Score("binding[a]", 0.55, 0.6), _offset(0, 0)]
    far = [Score("binding[a]", 0.0, 0.6), _offset(0, 0)]
    nan = [Score("binding[a]", float("nan"), 0.6), _offset(0, 0)]
    assert quality(passing) > quality(near) > quality(far) >= quality(nan)
    assert 0.0 <= quality(nan) and quality(passing) <= 1.0
    # lipsync weighs more than identity: failing lipsync costs more than failing identity
    a = [_offset(8, 8), Score("identity[x]", 0.9, 0.5)]
    b = [_offset(0, 0), Score("identity[x]", 0.1, 0.5)]
    assert quality(b) > quality(a)
    assert quality([]) == 1.0
