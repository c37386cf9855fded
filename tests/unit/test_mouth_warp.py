"""The mesh-driven mouth: the warp stays inside the face, opens at the mouth, follows the speech as
the face mesh reads it back from a rendered clip, and a character keeps one head size per framing."""
import cv2
import numpy as np
import pytest

from tests.fixtures import evalkit as ek
from tests.fixtures.demo import CAT_FACE_BOX, CAT_MOUTH, make_audio, make_scene, make_shot, sample_images
from tools.base import VideoKnobs
from tools.evaluators.lipsync import envelope
from tools.evaluators.signals import AUDIO_SR, attempt_signals, speaker_stem
from tools.faces.mesh import FACE_OVAL, find_mesh
from tools.faces.portraits import load_portrait
from tools.media.masks import load_masks
from tools.video.animatic.renderer import AnimaticRenderer
from tools.video.animatic.sprites import StagedSprite
from tools.video.animatic.staging import Placement

W, H = 640, 480


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return sample_images(tmp_path_factory.mktemp("img"))


def _frames(sprite, opening, width=1.0):
    out = []
    for o in (0.0, opening):
        frame = np.full((H, W, 3), 90, np.uint8)
        sprite.composite(frame, np.zeros((H, W), np.uint8), 1, 0, 0, o, width, 0.0)
        out.append(frame)
    return out


@pytest.mark.parametrize("who", ["collins", "hopper"])
def test_human_warp_stays_inside_the_face_oval_and_opens_the_lips(images, who):
    portrait = load_portrait(images[who])
    sprite = StagedSprite(portrait, Placement(who, W / 2, H * 0.45, 200.0, 0), W, H)
    rest, wide = _frames(sprite, 1.0, 1.1)
    changed = np.abs(rest.astype(int) - wide.astype(int)).max(axis=2) > 8
    assert changed.sum() > 300  # the mouth really moved
    # The face oval, read back from the rendered rest frame by the mesh, bounds every changed pixel.
    x, y, w, h = sprite.face
    mesh = find_mesh(rest, (x + sprite.x, y + sprite.y, w, h))
    assert mesh.is_face
    oval = np.zeros((H, W), np.uint8)
    cv2.fillPoly(oval, [mesh.points[list(FACE_OVAL), :2].round().astype(np.int32)], 1)
    assert (changed & (oval == 0)).sum() == 0
    # It opens at the lips: the mesh measures a wider lip gap on the warped frame, and the
    # changed pixels centre near the mouth (not the eyes or the nose).
    assert find_mesh(wide, (x + sprite.x, y + sprite.y, w, h)).mouth_ratio() > mesh.mouth_ratio() + 0.05
    ys, xs = np.nonzero(changed)
    mx, my = sprite.x + sprite.rig.rect[0] + sprite.rig.mouth[0], sprite.y + sprite.rig.rect[1] + sprite.rig.mouth[1]
    assert abs(np.median(xs) - mx) < 0.1 * w and -0.05 * h < np.median(ys) - my < 0.15 * h


def test_cat_mouth_opens_at_its_anchor(images):
    portrait = load_portrait(images["chelsea"], CAT_FACE_BOX, CAT_MOUTH)
    sprite = StagedSprite(portrait, Placement("chelsea", W / 2, H * 0.4, 200.0, 0), W, H)
    rest, wide = _frames(sprite, 1.0)
    ys, xs = np.nonzero(np.abs(rest.astype(int) - wide.astype(int)).max(axis=2) > 8)
    s = 200.0 / CAT_FACE_BOX[3]
    ax = sprite.x + sprite.face[0] + (CAT_MOUTH[0] - CAT_FACE_BOX[0]) * s
    ay = sprite.y + sprite.face[1] + (CAT_MOUTH[1] - CAT_FACE_BOX[1]) * s
    assert len(xs) > 100
    assert abs(np.median(xs) - ax) < 12 and -4 < np.median(ys) - ay < 30
    eyes_y = sprite.y + sprite.face[1] + 0.45 * sprite.face[3]
    assert ys.min() > eyes_y  # nothing moves at eye level: no smear on the nose bridge


def _follow(attempt, cid):
    sig = attempt_signals(attempt)
    k = sig.index(cid)
    stem = speaker_stem(attempt.audio, "hopper", sig.frames / sig.fps)
    loud = envelope(stem, AUDIO_SR, sig.fps, sig.frames)
    ap = sig.aperture[:, k]
    ok = np.isfinite(ap)
    return sig.measure[cid], float(np.corrcoef(ap[ok], loud[ok])[0, 1]) if ap[ok].std() > 0 else 0.0


def test_mesh_reads_the_rendered_mouth_following_the_speech(tmp_path):
    attempt = ek.one_line_attempt(tmp_path, "Then somebody left a bug in it. Check the relays.")
    measure, r = _follow(attempt, "hopper")
    assert measure == "mesh" and r >= 0.5, r
    measure, r_listener = _follow(attempt, "collins")  # the silent listener does not follow it
    assert measure == "mesh" and r_listener < 0.2, r_listener
    # Negative control: the same clip rendered with the mouth 8 frames late follows it less.
    late = ek.render(attempt.shot, attempt.scene, attempt.audio, ek.orbit_cast(), tmp_path / "late",
                     VideoKnobs(offset_frames=8))
    assert _follow(late, "hopper")[1] < r - 0.2


def test_one_head_size_per_character_and_framing(tmp_path, images):
    from tests.fixtures.demo import demo_cast

    cast = demo_cast(tmp_path / "cast")
    audio = make_audio(tmp_path / "a", [("collins", 0.1, 0.5)], 0.8)
    heights = {}
    for partner in ("hopper", "chelsea"):
        chars = ["collins", partner]
        res = AnimaticRenderer().render(make_shot(chars, "two-shot", audio), make_scene(chars), audio, cast,
                                        VideoKnobs(width=W, height=H), tmp_path / f"{partner}.mp4",
                                        tmp_path / f"{partner}.npz")
        boxes = load_masks(res.masks_path)["face_boxes"]
        heights[partner] = {c: float(np.nanmedian(boxes[:, k, 3] - boxes[:, k, 1])) for k, c in enumerate(chars)}
    assert heights["hopper"]["collins"] == pytest.approx(heights["chelsea"]["collins"], abs=1.0)
    assert heights["hopper"]["collins"] == pytest.approx(heights["hopper"]["hopper"], abs=1.0)


def test_blink_closes_the_mesh_eyes_and_nothing_else(images):
    from tools.faces.mesh import LEFT_EYE, RIGHT_EYE

    portrait = load_portrait(images["hopper"])
    sprite = StagedSprite(portrait, Placement("hopper", W / 2, H * 0.45, 200.0, 0), W, H)
    frames = []
    for closure in (0.0, 1.0):
        frame = np.full((H, W, 3), 90, np.uint8)
        sprite.composite(frame, np.zeros((H, W), np.uint8), 1, 0, 0, 0.0, 1.0, closure)
        frames.append(frame)
    changed = np.abs(frames[0].astype(int) - frames[1].astype(int)).max(axis=2) > 8
    bands = np.zeros((H, W), bool)
    for (x0, y0, x1, y1), _, _ in sprite.eyes:
        bands[sprite.y + y0:sprite.y + y1, sprite.x + x0:sprite.x + x1] = True
    assert changed.sum() > 100 and not (changed & ~bands).any()

    def openness(frame):
        x, y, w, h = sprite.face
        p = find_mesh(frame, (x + sprite.x, y + sprite.y, w, h)).points
        return [abs(p[lid, 1] - p[low, 1]) / abs(p[a, 0] - p[b, 0]) for a, b, lid, low in (LEFT_EYE, RIGHT_EYE)]

    opened, shut = openness(frames[0]), openness(frames[1])
    # The mesh is not trained on closed eyes and under-reads them: 0.25 -> 0.18 here.
    assert all(s < 0.8 * o for o, s in zip(opened, shut)), (opened, shut)
