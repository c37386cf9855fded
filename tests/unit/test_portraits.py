"""Portraits: loading any image mode, face detection (BlazeFace + mesh), face_box and mouth
overrides for non-human faces, the u2netp matte and its cache."""
import cv2
import numpy as np
import pytest
from PIL import Image

from tests.fixtures.demo import CAT_FACE_BOX, CAT_MOUTH, sample_images
from tools.base import ToolError
from tools.faces.portraits import detect_face, load_image, load_portrait


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return sample_images(tmp_path_factory.mktemp("img"))


def test_load_image_any_mode(tmp_path, images):
    rgb = load_image(images["collins"])
    for mode in ("RGBA", "L", "P", "LA"):
        Image.fromarray(rgb).convert(mode).save(tmp_path / f"{mode}.png")
        out = load_image(tmp_path / f"{mode}.png")
        assert out.shape == rgb.shape and out.dtype == np.uint8
    gray16 = (rgb.mean(axis=2) * 256).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    out = load_image(tmp_path / "g16.png")
    assert out.shape == rgb.shape and out.max() > 200
    with pytest.raises(ToolError, match="missing.png"):
        load_image(tmp_path / "missing.png")


def test_detect_faces_where_they_are(images):
    x, y, w, h = detect_face(load_image(images["collins"]))
    assert 170 < x + w / 2 < 260 and 80 < y + h / 2 < 150  # astronaut face centre ~ (223, 113)
    x, y, w, h = detect_face(load_image(images["hopper"]))
    assert 220 < x + w / 2 < 300 and 170 < y + h / 2 < 260
    noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3)).astype(np.uint8)
    assert detect_face(noise) is None


def test_no_face_and_no_box_names_the_image(tmp_path):
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(tmp_path / "wall.png")
    with pytest.raises(ToolError, match="wall.png") as err:
        load_portrait(tmp_path / "wall.png")
    assert "face_box" in err.value.fix
    with pytest.raises(ToolError, match="outside"):
        load_portrait(tmp_path / "wall.png", (100, 10, 100, 50))


@pytest.mark.parametrize("who", ["collins", "hopper", "chelsea"])
def test_soft_matte_head_and_shoulders(images, who):
    p = load_portrait(images[who], CAT_FACE_BOX if who == "chelsea" else None)
    x, y, w, h = p.face
    assert p.alpha.shape == p.rgb.shape[:2]
    assert p.alpha[y + h // 2, x + w // 2] > 0.95  # face centre is solid
    assert min(p.alpha[0, 0], p.alpha[0, -1]) < 0.1  # the background around the head is cut away
    soft = ((p.alpha > 0.05) & (p.alpha < 0.95)).mean()
    assert 0.005 < soft < 0.3  # a feathered edge, not a hard cut and not a haze


def _alpha_at(images, who):
    """The cut-out's matte, read at image coordinates."""
    from tools.faces.portraits import load_image

    box = detect_face(load_image(images[who]))
    p = load_portrait(images[who])
    ox, oy = box[0] - p.face[0], box[1] - p.face[1]
    return p, lambda x, y: float(p.alpha[y - oy, x - ox])


def test_u2netp_matte_keeps_hair_and_drops_the_flag(images):
    p, at = _alpha_at(images, "collins")
    assert at(226, 45) > 0.9 and at(200, 50) > 0.9  # the hair above the forehead (GrabCut cut it flat)
    assert at(225, 200) > 0.9  # the dark neck ring is part of the subject
    p, at = _alpha_at(images, "hopper")
    assert max(at(40, 100), at(60, 250), at(450, 80)) < 0.05  # the flag behind her is gone
    assert at(260, 60) > 0.9 and at(260, 420) > 0.9  # cap and collar kept
    for who in ("collins", "hopper"):
        p = load_portrait(images[who])
        fg = (p.alpha > 0.5).astype(np.uint8)
        n, lab = cv2.connectedComponents(1 - fg)
        border = set(np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])))
        holes = [int((lab == i).sum()) for i in range(1, n) if i not in border]
        assert all(h < 1e-3 * fg.size for h in holes), (who, holes)  # no blobs punched into the subject


def test_mattes_are_cached_per_image_digest(images, tmp_path, monkeypatch):
    from tools.faces import mattes
    from tools.faces.portraits import load_image

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    rgb = load_image(images["chelsea"])[::2, ::2].copy()
    first = mattes.subject_matte(rgb, person=False)
    (entry,) = (tmp_path / "cascade-composer" / "mattes").glob("*.npy")
    calls = []
    monkeypatch.setattr(mattes, "u2netp_matte", lambda x: calls.append(1) or np.zeros(x.shape[:2], np.float32))
    again = mattes.subject_matte(rgb, person=False)
    # read back, not recomputed, and exactly what the first call gave: a first render is every later one
    assert calls == [] and np.array_equal(again, first)
    other = rgb.copy()
    other[0, 0] ^= 1  # one changed pixel is another image
    mattes.subject_matte(other, person=False)
    assert calls == [1]
    entry.write_bytes(b"not a numpy file")  # a damaged entry is recomputed
    mattes.subject_matte(rgb, person=False)
    assert calls == [1, 1]


def test_non_human_face_mouth_from_the_anchor_or_the_lower_centre(images):
    x, y, w, h = CAT_FACE_BOX
    anchored = load_portrait(images["chelsea"], CAT_FACE_BOX, CAT_MOUTH)
    assert anchored.mesh is None  # the mesh rejects the cat
    ox, oy = x - anchored.face[0], y - anchored.face[1]
    assert (anchored.mouth[0] + ox, anchored.mouth[1] + oy) == CAT_MOUTH
    default = load_portrait(images["chelsea"], CAT_FACE_BOX)
    mx, my = default.mouth[0] + ox, default.mouth[1] + oy
    assert mx == x + w / 2 and y + 0.75 * h < my < y + h  # the lower centre, never between the eyes
    with pytest.raises(ToolError, match="mouth"):
        load_portrait(images["chelsea"], CAT_FACE_BOX, (900, 10))
    human = load_portrait(images["hopper"])
    assert human.mesh is not None and human.mesh.shape == (468, 3)
    fx, fy, fw, fh = human.face
    assert fx < human.mouth[0] < fx + fw and fy + 0.6 * fh < human.mouth[1] < fy + fh


def test_people_are_gated_by_the_dilated_selfie_mask(images, tmp_path, monkeypatch):
    from tools.faces import mattes
    from tools.faces.portraits import load_image

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    # u2netp replaced by "everything is salient", so what is left is the gate alone.
    monkeypatch.setattr(mattes, "u2netp_matte", lambda x: np.ones(x.shape[:2], np.float32))
    rgb = load_image(images["hopper"])
    person = mattes.subject_matte(rgb, person=True)
    assert person[230, 260] > 0.95 and person[560, 256] > 0.95  # face and uniform
    assert person[40, 40] < 0.05 and person[60, 470] < 0.05  # the flag and the sky behind her
    grown = cv2.dilate((mattes.selfie_mask(rgb) > 0.5).astype(np.uint8), np.ones((3, 3), np.uint8),
                       iterations=2 * int(mattes.SELFIE_GROW * max(rgb.shape[:2])) + 4)
    assert person[grown == 0].max() < 0.05  # nothing survives beyond the grown (and feathered) mask
    assert mattes.subject_matte(rgb, person=False).min() == 1.0  # animals are not gated
