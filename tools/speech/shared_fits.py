"""Voice fits that travel with a cast: a folder `voice-fits/` beside a character's reference clip.

Every fit and base choice is a JSON entry in the user's voice cache, named by a digest of the clip, its
transcript, the rest of the cast and the code that made it (`tools.speech.fitting`, `tools.speech.bases`).
The same entries may sit beside the clip, in `voice-fits/<cache folder>/<name>`
(`voice-fits/voices/<key>.fit.json`): an entry the user cache lacks is read from there. A render never
writes there; `compose voices --share-fits` has the speech backend ask for the character's choice and the
fit of every base it weighed (`share_fits`), and copies every entry asked for that clip into the folder,
so that the cast's folder carries its fits to a collaborator's machine or a Ray worker, or the example's
to a fresh one, and the first render there fits nothing. (A clip's profile is not shared: a shared fit
needs none.) An entry is found by its name, so one made by other code or for another cast is never
read; a stale folder only costs the fits it would have saved.
"""
from __future__ import annotations

import threading
from pathlib import Path

from tools.media.files import atomic_copy

SHARED = "voice-fits"
_LOCK = threading.Lock()
_USED: dict[Path, set[Path]] = {}  # a reference clip (resolved) -> the user-cache entries asked for it
_HOMES: dict[Path, Path] = {}  # a clip joined from takes (resolved) -> the folder of its first take


def set_home(clip: Path, folder: Path) -> None:
    """`clip`'s fits travel in `folder`'s `voice-fits/`, not beside it: a voice's takes are joined into a clip
    in the user cache (`tools.speech.world.joined_takes`), and the cast's folder is where they travel from."""
    with _LOCK:
        _HOMES[Path(clip).resolve()] = Path(folder)


def home(reference: Path) -> Path:
    """The folder whose `voice-fits/` holds `reference`'s shared fits: its own, or its takes' (`set_home`)."""
    with _LOCK:
        return _HOMES.get(Path(reference).resolve(), Path(reference).parent)


def in_folder(path: Path, folder: Path) -> Path:
    """Where the entry `path` (of a user cache, or of another `voice-fits/`) sits in `folder`'s `voice-fits/`."""
    return folder / SHARED / path.parent.name / path.name


def is_shared(path: Path) -> bool:
    """Whether `path` is an entry of a `voice-fits/` folder."""
    return path.parent.parent.name == SHARED


def shared_path(path: Path, reference: Path) -> Path:
    """Where the user-cache entry `path` of `reference`'s voice sits beside the clip (or its takes)."""
    return in_folder(path, home(reference))


def files_beside(reference: Path) -> list[Path]:
    """The entries in `voice-fits/` beside `reference` or its takes (those of every clip in that folder)."""
    return sorted(p for p in (home(reference) / SHARED).glob("*/*.json") if p.is_file())


def entry(path: Path, reference: Path | None) -> Path:
    """The file to read for the user-cache entry `path` of `reference`'s voice: `path` when it is there,
    else the copy beside the clip when that is there, else `path` (to be made, and written there)."""
    if reference is None:
        return path
    with _LOCK:
        _USED.setdefault(Path(reference).resolve(), set()).add(path)
    if path.is_file():
        return path
    shared = shared_path(path, reference)
    return shared if shared.is_file() else path


def share(reference: Path) -> list[Path]:
    """Copy every entry asked for `reference` in this process into `voice-fits/` beside it (each through a
    temporary name); returns the files written. Entries read from there already stay as they are."""
    with _LOCK:
        used = sorted(_USED.get(Path(reference).resolve(), ()))
    written = []
    for path in used:
        target = shared_path(path, reference)
        if not path.is_file() or target == path:
            continue
        atomic_copy(path, target)
        written.append(target)
    return written
