"""Lip sync of the animatic, measured from the decoded clip: inside each character's mask, the
lower face moves with that character's own speech (cross-correlation peak at lag 0 +-1 frame) and
stays still while others speak. Negative controls: an envelope shifted by 8 frames, and a render
whose mouths are shifted by 8 frames with the `offset_frames` knob, both fail the lag check.
"""
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.demo import demo_cast, make_audio, make_scene, make_shot
from tools.base import VideoKnobs
from tools.media.audio import read_audio
from tools.media.masks import load_masks
from tools.media.video import read_frames
from tools.video.animatic.lips import frame_envelope
from tools.video.animatic.renderer import AnimaticRenderer

W, H, FPS = 640, 360, 25
MAX_LAG = 12
LINES = [("collins", 0.3, 2.2), ("hopper", 2.9, 2.2), ("collins", 5.5, 1.2)]


def lower_face_energy(clip: Path, masks_path: Path, k: int) -> np.ndarray:
    """Per frame: mean absolute deviation of character k's lower face from its median look."""
    m = load_masks(masks_path)
    boxes = m["face_boxes"][:, k]
    w = int(np.nanmax(boxes[:, 2] - boxes[:, 0]))
    h = int(np.nanmax(boxes[:, 3] - boxes[:, 1]))
    patches = []
    for f, frame in enumerate(read_frames(clip)):
        x0, y0 = int(round(boxes[f, 0])), int(round(boxes[f, 1]))
        ys = slice(y0 + int(0.6 * h), y0 + int(1.05 * h))
        xs = slice(x0 + int(0.2 * w), x0 + int(0.8 * w))
        inside = (m["masks"][f][ys, xs] == k + 1)[..., None]
        patches.append(frame[ys, xs].astype(np.float32) * inside)
    stack = np.stack(patches)
    ref = np.median(stack, axis=0)
    return np.abs(stack - ref).mean(axis=(1, 2, 3))


def speech_envelope(clip: Path, spans: list[tuple[float, float]], frames: int) -> np.ndarray:
    """RMS of the clip's decoded audio per frame, kept only inside the given speech spans."""
    sr = 16000
    audio = read_audio(clip, sr)
    t = (np.arange(frames) + 0.5) / FPS
    env = frame_envelope(audio, sr, t, FPS)
    keep = np.zeros(frames, bool)
    for a, b in spans:
        keep |= (t >= a) & (t < b)
    return env * keep


def peak_lag(motion: np.ndarray, env: np.ndarray) -> int:
    """Lag (frames) maximising the normalised cross-correlation; >0: motion after the audio."""
    a = (motion - motion.mean()) / (motion.std() + 1e-9)
    b = (env - env.mean()) / (env.std() + 1e-9)
    n = len(a)
    scores = {lag: float(np.mean(a[max(0, lag):n + min(0, lag)] * b[max(0, -lag):n - max(0, lag)]))
              for lag in range(-MAX_LAG, MAX_LAG + 1)}
    return max(scores, key=scores.get)


@pytest.fixture(scope="module")
def cast(tmp_path_factory):
    return demo_cast(tmp_path_factory.mktemp("img"), ("collins", "hopper"))


def render(tmp: Path, cast, lines, framing="two-shot", phonemes=False, **knobs):
    audio = make_audio(tmp / "audio", lines, 7.0, phonemes=phonemes)
    chars = ["collins", "hopper"]
    shot = make_shot(chars, framing, audio)
    res = AnimaticRenderer().render(shot, make_scene(chars), audio, cast,
                                    VideoKnobs(width=W, height=H, fps=FPS, **knobs),
                                    tmp / "clip.mp4", tmp / "masks.npz")
    return res, audio


def spans_of(audio, who):
    return [(l.start, l.end) for l in audio.lines if l.speaker == who]


def check_binding(res, audio):
    """Per character: measured lag, lag against the envelope shifted by 8 frames, and the motion
    during the other's speech relative to the motion during their own."""
    lags, shifted, quiet = {}, {}, {}
    for k, who in enumerate(["collins", "hopper"]):
        motion = lower_face_energy(res.clip_path, res.masks_path, k)
        own = speech_envelope(res.clip_path, spans_of(audio, who), res.frames)
        other = speech_envelope(res.clip_path, spans_of(audio, "hopper" if k == 0 else "collins"),
                                res.frames)
        lags[who] = peak_lag(motion, own)
        talking = own > 0.3 * own.max()
        quiet[who] = motion[other > 0].mean() / motion[talking].mean()
        shifted[who] = peak_lag(motion, np.roll(own, 8))
    return lags, shifted, quiet


def test_mouths_follow_own_speech_envelope(tmp_path, cast):
    res, audio = render(tmp_path, cast, LINES)
    lags, shifted, quiet = check_binding(res, audio)
    assert all(abs(v) <= 1 for v in lags.values()), lags
    assert all(v < 0.1 for v in quiet.values()), quiet
    # Negative control: audio shifted by 8 frames fails the same lag check.
    assert all(abs(v) > 1 for v in shifted.values()), shifted


def test_offset_knob_shifted_mouths_fail_the_lag_check(tmp_path, cast):
    res, audio = render(tmp_path, cast, LINES, offset_frames=8)
    lags, _, _ = check_binding(res, audio)
    assert all(7 <= v <= 9 for v in lags.values()), lags


def test_phoneme_timings_and_overlapping_lines(tmp_path, cast):
    # hopper starts while collins is still talking: both mouths move during the overlap.
    lines = [("collins", 0.3, 3.0), ("hopper", 2.3, 3.0)]
    res, audio = render(tmp_path, cast, lines, phonemes=True)
    for k, who in enumerate(["collins", "hopper"]):
        motion = lower_face_energy(res.clip_path, res.masks_path, k)
        own = speech_envelope(res.clip_path, spans_of(audio, who), res.frames)
        assert abs(peak_lag(motion, own)) <= 1, who
        overlap = slice(int(2.4 * FPS), int(3.2 * FPS))
        assert motion[overlap].max() > 5 * np.median(motion), who
