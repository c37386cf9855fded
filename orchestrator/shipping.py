"""Files that travel between the Ray driver and its workers by content, never by the driver's paths.

Out: every input file of the project (reference images, voice clips and the voice fits beside them,
LoRAs, scene backgrounds) goes to the workers once, as `{sha256: bytes}` in Ray's object store; a
worker writes them into its own content-addressed folder (a voice fit under its own name, in
voice-fits/ there) and runs on a copy of the project whose paths point there (`relocate_project`).
Model folders in `render.*` are not shipped: they are cluster paths, checked on each worker
(`missing_model_paths`).

Back: without a shared filesystem a worker sends each shot's attempt folders and the cache entries
it made as `{path relative to the run folder: (sha256, bytes)}`; the driver checks every digest
before writing a file (`land_files`).
"""
from __future__ import annotations

from pathlib import Path

from orchestrator.config import RenderConfig
from orchestrator.inputs.assets import backend_path_fields
from orchestrator.inputs.project import Project
from orchestrator.store import atomic_write_bytes, digest_bytes, digest_file
from tools.base import ToolError
from tools.speech.shared_fits import files_beside, in_folder, is_shared

# (digest, bytes) of each file by its path relative to a run folder
Files = dict[str, tuple[str, bytes]]


def input_paths(project: Project) -> list[Path]:
    """Every file a shot may read from the project: images, voice clips and the fits beside them (a
    cast's `voice-fits/`), LoRAs, backgrounds."""
    paths = []
    for c in project.cast.characters:
        paths += [*c.images, c.voice.reference, *([c.lora] if c.lora else []), *files_beside(c.voice.reference)]
    paths += [s.background for s in project.script.scenes if s.background]
    return sorted({Path(p) for p in paths})


def input_bundle(project: Project) -> tuple[dict[str, str], dict[str, bytes]]:
    """({driver path: digest}, {digest: bytes}) for every input file; equal files travel once."""
    by_path, blobs = {}, {}
    for path in input_paths(project):
        data = path.read_bytes()
        by_path[str(path)] = digest = digest_bytes(data)
        blobs[digest] = data
    return by_path, blobs


def unpack_inputs(by_path: dict[str, str], blobs: dict[str, bytes], folder: Path) -> dict[str, Path]:
    """Write the bundle into `folder` as `<digest><suffix>` (kept if already there with that
    content); returns {driver path: local path}. A damaged blob is an error, not a wrong film."""
    folder.mkdir(parents=True, exist_ok=True)
    local = {}
    for driver_path, digest in by_path.items():
        data = blobs[digest]
        if digest_bytes(data) != digest:
            raise ToolError(f"the input file {driver_path} arrived damaged on this worker",
                            "run the same command again; if it repeats, check the worker's memory")
        p = Path(driver_path)
        # a voice fit keeps its name, in voice-fits/ beside the clips (`tools.speech.shared_fits`): it is
        # found by that name, and is named by digests of what it was made from
        target = in_folder(p, folder) if is_shared(p) else folder / f"{digest}{p.suffix}"
        if not (target.is_file() and digest_file(target) == digest):
            atomic_write_bytes(target, data)
        local[driver_path] = target
    return local


def relocate_project(project: Project, local: dict[str, Path]) -> Project:
    """A copy of `project` reading every input file from `local` ({driver path: local path})."""
    def moved(p):
        return local[str(p)] if p is not None else None

    characters = [c.model_copy(update={"images": [moved(p) for p in c.images], "lora": moved(c.lora),
                                       "voice": c.voice.model_copy(update={"reference": moved(c.voice.reference)})})
                  for c in project.cast.characters]
    scenes = [s.model_copy(update={"background": moved(s.background)}) for s in project.script.scenes]
    return Project(script=project.script.model_copy(update={"scenes": scenes}),
                   cast=project.cast.model_copy(update={"characters": characters}),
                   script_path=project.script_path, cast_path=project.cast_path, root=project.root,
                   locations=project.locations)


def missing_model_paths(config: RenderConfig) -> list[str]:
    """`render.<backend>.<key> = path` settings of the backends this run uses that name no file here."""
    used = {config.speech, config.video, *config.evaluators}
    missing = []
    for section, keys in backend_path_fields().items():
        if section not in used:
            continue
        for key in keys:
            path = getattr(getattr(config, section), key)
            if path is not None and not Path(path).exists():
                missing.append(f"render.{section}.{key} = {path}")
    return missing


def read_files(out_dir: Path, folders: list[Path]) -> Files:
    """Every file under `folders`, by its path relative to `out_dir`: (sha256, bytes)."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                out[str(path.relative_to(out_dir))] = (digest_bytes(data), data)
    return out


def land_files(out_dir: Path, files: Files) -> int:
    """Write a worker's files into the driver's `out_dir`, each after checking its digest; a file
    already there with that digest is left alone. Returns how many were written."""
    root = out_dir.resolve()
    bad = [rel for rel, (digest, data) in files.items() if digest_bytes(data) != digest]
    outside = [rel for rel in files if not (root / rel).resolve().is_relative_to(root)]
    if bad or outside:
        raise ToolError(f"a Ray worker sent {len(bad)} damaged and {len(outside)} misplaced file(s), e.g. "
                        f"{(bad + outside)[0]}; nothing of that shot was kept",
                        "run the same command again (the shot is rendered anew); if it repeats, check the "
                        "worker's disk and memory")
    written = 0
    for rel, (digest, data) in sorted(files.items()):
        path = root / rel
        if path.is_file() and digest_file(path) == digest:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
        written += 1
    return written
