"""Render node: the video backend turns the shot and its speech into clip.mp4 + masks.npz."""
from __future__ import annotations

import json
from pathlib import Path

from orchestrator.context import RunContext
from orchestrator.schema.plan import SceneInfo, Shot
from orchestrator.state import ShotState
from orchestrator.store import atomic_copy, cache_counts, digest_file, digest_json
from tools.base import ShotAudio, VideoKnobs


def load_attempt(attempt_dir: Path) -> tuple[Shot, ShotAudio]:
    """The retimed shot and its audio as the speak node left them."""
    shot = Shot.model_validate_json((attempt_dir / "shot.json").read_text())
    audio = ShotAudio.from_json(json.loads((attempt_dir / "audio.json").read_text()))
    return shot, audio


def video_knobs(ctx: RunContext, state: ShotState) -> VideoKnobs:
    c = ctx.config
    base = {"width": c.width, "height": c.height, "fps": c.fps, "subtitles": c.subtitles,
            "lower_thirds": c.lower_thirds}
    return VideoKnobs(**{**base, **state["video_knobs"]})


def render(state: ShotState, ctx: RunContext) -> dict:
    ctx.check_stop()
    attempt_dir = Path(state["attempt_dir"])
    shot, audio = load_attempt(attempt_dir)
    scene = SceneInfo.model_validate(state["scene"])
    knobs = video_knobs(ctx, state)
    video = ctx.video
    cast = ctx.project.cast
    assets = [str(p) for cid in shot.characters for p in cast.by_id(cid).images]
    if scene.background:
        assets.append(scene.background)
    key = digest_json(
        {
            "kind": "video",
            "backend": video.name,
            "version": video.version,
            "shot": shot.model_dump(mode="json"),
            "scene": scene.model_dump(mode="json", exclude={"background"}),
            # Content, not paths: a moved project keeps its cache.
            "characters": [cast.by_id(cid).model_dump(mode="json", exclude={"images", "voice", "lora"})
                           for cid in shot.characters],
            "assets": [digest_file(Path(a)) for a in assets],
            "audio": digest_file(audio.wav_path),
            "timings": [[ln.line_id, ln.speaker, ln.start, [t.__dict__ for t in ln.speech.phonemes]]
                        for ln in audio.lines],
            "knobs": knobs.as_dict(),
        }
    )
    ctx.on_event("stage", {"shot": shot.id, "stage": "render", "attempt": state["attempt"]})

    def build(tmp: Path):
        video.render(shot, scene, audio, cast, knobs, tmp / "clip.mp4", tmp / "masks.npz")
        return ["clip.mp4", "masks.npz"]

    entry, outcome = ctx.cache.get_or_build(key, build)
    for name in ("clip.mp4", "masks.npz"):
        atomic_copy(entry / name, attempt_dir / name)
    return {"cache": cache_counts(outcome)}
