"""Portraits: loading any image mode, face detection, face_box override, the soft matte."""
import numpy as np
import pytest
from PIL import Image

from tests.fixtures.demo import CAT_FACE_BOX, sample_images
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
