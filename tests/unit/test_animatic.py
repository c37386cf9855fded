"""The animatic renderer's outputs: clip and masks contract, staging, sets, no-speech shots,
1-4 characters (the cat through its face_box), knobs, and flat memory on longer shots."""
import tracemalloc

import numpy as np
import pytest

from tests.fixtures.demo import demo_cast, make_audio, make_scene, make_shot
from tools import registry
from tools.base import VideoGenerator, VideoKnobs
from tools.media.masks import load_masks
from tools.media.video import count_frames, read_frames
from tools.video.animatic.backgrounds import parse_heading, procedural_set
from tools.video.animatic.renderer import AnimaticRenderer

W, H = 320, 180


@pytest.fixture(scope="module")
def cast(tmp_path_factory):
    return demo_cast(tmp_path_factory.mktemp("img"), ("collins", "hopper", "chelsea", "grace"))


def render(tmp, cast, chars, framing, lines=(), seconds=2.0, scene_chars=None, **knobs):
    audio = make_audio(tmp / "audio", list(lines), seconds)
    shot = make_shot(chars, framing, audio, focus=knobs.pop("focus", None))
    scene = make_scene(scene_chars or chars, heading=knobs.pop("heading", "INT. ORBITAL STATION - NIGHT"))
    k = VideoKnobs(width=knobs.pop("width", W), height=knobs.pop("height", H), **knobs)
    return AnimaticRenderer().render(shot, scene, audio, cast, k, tmp / "clip.mp4", tmp / "masks.npz")


def test_registry_builds_a_video_generator():
    gen = registry.create("video", "animatic")
    assert isinstance(gen, VideoGenerator) and gen.name == "animatic"


def test_one_to_four_characters_cat_included(tmp_path, cast):
    everyone = ["collins", "hopper", "chelsea", "grace"]
    for n in range(1, 5):
        chars = everyone[:n]
        res = render(tmp_path / str(n), cast, chars, "wide", [(chars[-1], 0.2, 1.0)], seconds=1.2)
        m = load_masks(res.masks_path)
        assert count_frames(res.clip_path) == res.frames == 30 and res.fps == 25
        assert m["masks"].shape == (30, H, W) and list(m["labels"]) == chars
        assert m["face_boxes"].shape == (30, n, 4) and np.isfinite(m["face_boxes"]).all()
        for k in range(1, n + 1):
            assert (m["masks"][0] == k).sum() > 200, (n, k)  # everyone is on screen, cat included
        # Left to right as listed in the scene.
        xs = [np.nanmean(m["face_boxes"][:, k, [0, 2]]) for k in range(n)]
        assert xs == sorted(xs)


def test_close_up_frames_the_focus_face_at_sixty_percent(tmp_path, cast):
    res = render(tmp_path, cast, ["collins", "hopper"], "close-up", [("hopper", 0.1, 1.0)],
                 seconds=1.2, focus="hopper")
    boxes = load_masks(res.masks_path)["face_boxes"]
    assert np.isnan(boxes[:, 0]).all()  # collins is off screen in hopper's close-up
    heights = boxes[:, 1, 3] - boxes[:, 1, 1]
    assert 0.5 * H < np.median(heights) < 0.7 * H


def test_screen_direction_holds_across_reverse_shots(tmp_path, cast):
    scene = ["collins", "hopper"]
    sides = {}
    for focus in scene:
        res = render(tmp_path / focus, cast, scene, "over-shoulder", [(focus, 0.1, 0.8)],
                     seconds=1.0, focus=focus, scene_chars=scene)
        m = load_masks(res.masks_path)
        for k, who in enumerate(scene):
            cols = np.nonzero(m["masks"][0] == k + 1)[1]
            sides.setdefault(who, []).append(cols.mean() / W)
    assert max(sides["collins"]) < 0.5 < min(sides["hopper"]), sides


def test_shot_without_speech_keeps_mouths_closed(tmp_path, cast):
    res = render(tmp_path, cast, ["hopper"], "close-up", [], seconds=1.6)
    m = load_masks(res.masks_path)
    frames = list(read_frames(res.clip_path))
    x0, y0, x1, y1 = m["face_boxes"][0, 0].astype(int)
    h = y1 - y0
    lower = [f[y0 + int(0.65 * h):y1, x0:x1].astype(float) for f in frames]
    change = np.mean([np.abs(a - b).mean() for a, b in zip(lower, lower[1:])])
    assert change < 2.0  # only slow head sway and codec noise, no mouth


def test_procedural_sets_follow_the_heading():
    assert parse_heading("EXT. CITY STREET - NIGHT") == (False, "city street", "night")
    assert parse_heading("INT. LAB - DAY")[0]
    a = procedural_set("INT. ORBITAL STATION - NIGHT", W, H)
    assert np.array_equal(a, procedural_set("INT. ORBITAL STATION - NIGHT", W, H))
    day = procedural_set("EXT. PARK - DAY", W, H)
    night = procedural_set("EXT. PARK - NIGHT", W, H)
    assert day.mean() > night.mean() + 40
    assert np.abs(a.astype(int) - procedural_set("INT. KITCHEN - NIGHT", W, H)).mean() > 10


def test_mask_dilation_grows_masks_and_subtitles_burn_in(tmp_path, cast):
    lines = [("collins", 0.1, 1.0)]
    plain = render(tmp_path / "a", cast, ["collins"], "medium", lines, seconds=1.0)
    grown = render(tmp_path / "b", cast, ["collins"], "medium", lines, seconds=1.0,
                   mask_dilation=6, subtitles=True)
    a, b = load_masks(plain.masks_path)["masks"], load_masks(grown.masks_path)["masks"]
    assert (b > 0).sum() > (a > 0).sum() * 1.05
    fa, fb = list(read_frames(plain.clip_path))[10], list(read_frames(grown.clip_path))[10]
    bottom = slice(int(H * 0.75), H)
    assert np.abs(fa[bottom].astype(int) - fb[bottom]).mean() > 3  # a subtitle card is there


def test_memory_does_not_grow_with_shot_length(tmp_path, cast):
    peaks = []
    for seconds in (2.0, 8.0):
        tracemalloc.start()
        render(tmp_path / str(seconds), cast, ["collins", "hopper"], "two-shot",
               [("collins", 0.2, 1.5), ("hopper", seconds - 1.8, 1.5)], seconds=seconds)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < peaks[0] * 1.3 + 2e6, peaks  # 4x the frames, about the same peak
