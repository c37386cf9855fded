"""Asset checks of a loaded script and cast, each finding a located `Problem`: every path stays inside the
project folder and, when checked, exists and decodes (scene backgrounds, character images with a face, voice
clips and their takes, LoRAs). Each path is written back absolute; a voice's takes are joined into one clip.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, get_args

from pydantic import BaseModel

from orchestrator.config import RenderConfig
from orchestrator.inputs.problems import Problem, Source


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _put(data: Any, loc: tuple, value: Any) -> None:
    for part in loc[:-1]:
        data = data[part]
    data[loc[-1]] = value


MAX_PATH_CHARS = 1024  # far beyond any real asset path, well inside every file system's limit
MAX_NAME_BYTES = 255  # one file or folder name, as ext4, APFS and NTFS allow


def _unusable_path(raw: str) -> str:
    """Why `raw` cannot name a file on any system, or "" when it can."""
    if any(ord(ch) < 32 for ch in raw):
        return f"path {raw[:60]!r} contains control characters (a NUL byte or a line break)"
    if len(raw) > MAX_PATH_CHARS:
        return f"path is {len(raw)} characters long (at most {MAX_PATH_CHARS}): {raw[:60]}..."
    long = [part for part in raw.split("/") if len(part.encode()) > MAX_NAME_BYTES]
    if long:
        return f"a name in the path is {len(long[0].encode())} bytes long (at most {MAX_NAME_BYTES}): {long[0][:60]}..."
    return ""


def asset_path(src: Source, loc: tuple, root: Path, allow_outside: bool, problems: list[Problem]) -> Optional[Path]:
    """The absolute, resolved path named at `loc` (relative to `src`'s folder). Unless
    `allow_outside`, it must stay inside `root`, both as written and after following symlinks;
    otherwise a problem is recorded and None returned."""
    raw = src.get(loc)
    unusable = _unusable_path(raw)
    if unusable:
        problems.append(src.problem(loc, unusable, "give a plain relative path such as assets/images/name.png"))
        return None
    written = Path(os.path.expanduser(raw))
    joined = written if written.is_absolute() else src.path.absolute().parent / written
    try:
        resolved = joined.resolve()  # follows symlinks before `..`, as opening the file would
    except (OSError, RuntimeError) as exc:  # a symlink loop
        problems.append(src.problem(loc, f"{raw} cannot be resolved: {exc}", "fix or remove the symlink"))
        return None
    if not allow_outside:
        fix = "move the file into the project folder (the script's folder), or pass --allow-outside-assets"
        if not _inside(Path(os.path.normpath(joined)), Path(os.path.normpath(root))):
            problems.append(src.problem(loc, f"{raw} is outside the project folder {root}", fix))
            return None
        if not _inside(resolved, root.resolve()):
            problems.append(src.problem(loc, f"{raw} is a symlink to {resolved}, outside the project folder", fix))
            return None
    return resolved


def _file_asset(src: Source, loc: tuple, root: Path, allow_outside: bool, check: bool,
                problems: list[Problem]) -> Optional[tuple[Path, str]]:
    """Check an asset's path and write it back absolute. Returns the path and the path as
    written, or None when it is unusable (or `check` is off)."""
    raw = src.get(loc)
    if not isinstance(raw, str) or not raw.strip():
        return None  # the schema check reports it
    path = asset_path(src, loc, root, allow_outside, problems)
    if path is None:
        return None
    _put(src.data, loc, str(path))
    if not check:
        return None
    if not path.exists():
        problems.append(src.problem(loc, f"{raw} not found (looked for {path})",
                                    f"check the spelling; paths are relative to {src.name}'s folder"))
        return None
    return path, raw


def _image_problems(src: Source, loc: tuple, found: tuple[Path, str], char: Optional[dict],
                    problems: list[Problem]) -> None:
    """The image decodes; for a character, a face is found or a face_box that fits is given."""
    from tools.base import ToolError
    from tools.faces.portraits import detect_face, load_image

    path, raw = found
    try:
        rgb = load_image(path)
    except ToolError as exc:
        problems.append(src.problem(loc, exc.message, exc.fix or "use a PNG or JPEG file"))
        return
    if char is None:
        return
    box = char.get("face_box")
    h, w = rgb.shape[:2]
    if isinstance(box, list) and len(box) == 4 and all(isinstance(v, int) for v in box):
        if box[0] + box[2] > w or box[1] + box[3] > h:
            problems.append(src.problem(loc[:2] + ("face_box",), f"face_box {box} lies outside image {raw} ({w}x{h})",
                                        "give [x, y, width, height] inside every reference image"))
    elif box is None and detect_face(rgb) is None:
        problems.append(src.problem(loc, f"no face found in image {raw} of {char.get('id')!r}",
                                    "add `face_box: [x, y, width, height]` (the face's pixel box) to this "
                                    "character, or use a clearer frontal portrait"))
    mouth = char.get("mouth")
    if isinstance(mouth, list) and len(mouth) == 2 and all(isinstance(v, int) for v in mouth):
        if not (0 <= mouth[0] < w and 0 <= mouth[1] < h):
            problems.append(src.problem(loc[:2] + ("mouth",), f"mouth {mouth} lies outside image {raw} ({w}x{h})",
                                        "give the mouth's centre [x, y] inside every reference image"))


def _voice_problems(src: Source, loc: tuple, found: tuple[Path, str], problems: list[Problem]) -> None:
    from tools.speech.world import check_reference

    path, raw = found
    for msg in check_reference(path):
        problems.append(src.problem(loc, f"voice reference {raw}: {msg.removeprefix(f'{path}: ')}",
                                    "use a clean recording of 1 to 30 s of this character speaking aloud (wav)"))


def _takes(src: Source, loc: tuple, root: Path, allow_outside: bool, check: bool, problems: list[Problem],
           store: bool = True) -> None:
    """A voice's `takes`: each clip checked like a reference, then joined into one (`world.joined_takes`), which
    becomes the voice's `reference`, and their transcripts its `transcript`. Without `check` (unit tests) the
    first take stands for the clip; without `store` (`compose validate`) the joined clip is not written."""
    from tools.speech.world import MAX_REF_S, TAKE_EDGE_S, joined_takes, store_takes

    takes = src.get((*loc, "takes"))
    before, found = len(problems), []
    for k, take in enumerate(takes):
        if isinstance(take, dict):
            found.append(_file_asset(src, (*loc, "takes", k, "reference"), root, allow_outside, check, problems))
            if found[-1] is not None:
                _voice_problems(src, (*loc, "takes", k, "reference"), found[-1], problems)
    texts = [t.get("transcript") for t in takes if isinstance(t, dict)]
    if (len(problems) > before or not takes or (check and None in found) or len(texts) < len(takes)
            or not all(isinstance(t, str) and t.strip() for t in texts)):
        return  # each problem is reported where it is (the schema check reports a malformed take)
    clip = src.get((*loc, "takes", 0, "reference"))
    if check:
        joined, sr = joined_takes([path for path, _ in found])
        if len(joined) > MAX_REF_S * sr:
            problems.append(src.problem((*loc, "takes"), f"the {len(found)} takes add up to {len(joined) / sr:.1f} s "
                                        f"joined (their edge silences cut to {TAKE_EDGE_S} s), longer than "
                                        f"{MAX_REF_S:.0f} s", "keep 10-30 s of takes in all", value=False))
            return
        clip = store_takes(joined, sr, found[0][0], write=store)
    _put(src.data, (*loc, "reference"), str(clip))
    _put(src.data, (*loc, "transcript"), " ".join(t.strip() for t in texts))


def asset_problems(script: Source, cast: Optional[Source], root: Path, allow_outside: bool,
                   check: bool, problems: list[Problem], store: bool = True) -> None:
    """Every asset stays inside the project and, when `check`, exists and decodes: scene
    backgrounds, character images (with a face), voice references, LoRAs. Paths become absolute. With
    `store`, a voice's joined takes are written into the user cache."""
    scenes = script.get(("scenes",))
    for si, scene in enumerate(scenes if isinstance(scenes, list) else []):
        if isinstance(scene, dict) and "background" in scene:
            found = _file_asset(script, ("scenes", si, "background"), root, allow_outside, check, problems)
            if found is not None:
                _image_problems(script, ("scenes", si, "background"), found, None, problems)
    _model_dirs(script)
    chars = cast.get(("characters",)) if cast is not None else None
    for ci, char in enumerate(chars if isinstance(chars, list) else []):
        if not isinstance(char, dict):
            continue
        images = char.get("images")
        for k in range(len(images) if isinstance(images, list) else 0):
            found = _file_asset(cast, ("characters", ci, "images", k), root, allow_outside, check, problems)
            if found is not None:
                _image_problems(cast, ("characters", ci, "images", k), found, char, problems)
        if isinstance(char.get("voice"), dict) and isinstance(char["voice"].get("takes"), list):
            _takes(cast, ("characters", ci, "voice"), root, allow_outside, check, problems, store)
        elif isinstance(char.get("voice"), dict):
            found = _file_asset(cast, ("characters", ci, "voice", "reference"), root, allow_outside, check, problems)
            if found is not None:
                _voice_problems(cast, ("characters", ci, "voice", "reference"), found, problems)
        if "lora" in char:
            _file_asset(cast, ("characters", ci, "lora"), root, allow_outside, check, problems)


def backend_path_fields() -> dict[str, tuple[str, ...]]:
    """{backend section of `render`: its path-valued keys}, read from the config's own types."""
    out = {}
    for name, info in RenderConfig.model_fields.items():
        section = info.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            keys = tuple(k for k, f in section.model_fields.items() if Path in (f.annotation, *get_args(f.annotation)))
            if keys:
                out[name] = keys
    return out


def _model_dirs(script: Source) -> None:
    """Model folders in `render` are machine paths, not project assets: made absolute (relative
    to the script's folder), not confined; the backend that uses them checks them."""
    for section, keys in backend_path_fields().items():
        raw = script.get(("render", section))
        for key in keys if isinstance(raw, dict) else ():
            if isinstance(raw.get(key), str):
                path = Path(os.path.expanduser(raw[key]))
                raw[key] = str(path if path.is_absolute() else script.path.absolute().parent / path)
