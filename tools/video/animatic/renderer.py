"""The animatic renderer: the CPU video backend (`animatic`).

Each shot is composed from the cast's reference images (soft cut-outs staged by the framing over
the scene's set), with each character's mouth driven only by their own lines, seeded blinks, head
motion, listener nods and a camera move. Frames and router masks are streamed to disk as they are
made, so memory does not grow with the shot's length.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from orchestrator.schema.cast import Cast
from orchestrator.schema.plan import SceneInfo, Shot
from tools.base import ShotAudio, ToolError, VideoKnobs, VideoResult
from tools.faces.portraits import load_portrait
from tools.media.masks import MaskWriter
from tools.media.video import ClipWriter
from tools.video.animatic.backgrounds import shot_background
from tools.video.animatic.life import (
    apply_camera,
    blink_track,
    camera_matrices,
    head_track,
)
from tools.video.animatic.lips import mouth_tracks
from tools.video.animatic.overlays import build_overlays, draw_overlays
from tools.video.animatic.sprites import StagedSprite
from tools.video.animatic.staging import focus_of, side_of, stage

MAX_W, MAX_H = 1920, 1080


def _check_size(knobs: VideoKnobs) -> None:
    w, h = knobs.width, knobs.height
    if not (64 <= w <= MAX_W and 64 <= h <= MAX_H) or w % 2 or h % 2:
        raise ToolError(f"animatic size {w}x{h} is not supported",
                        f"set render.width/height to even numbers up to {MAX_W}x{MAX_H}")
    if knobs.fps <= 0:
        raise ToolError(f"fps {knobs.fps} must be positive", "set render.fps, e.g. 25")


class AnimaticRenderer:
    """Render shots as an animatic; implements `tools.base.VideoGenerator`."""

    name = "animatic"
    version = "2"  # real faces: mesh-driven mouths, u2netp cut-outs
    default_audio_guidance = None  # no diffusion: no audio guidance for a retry to raise

    def render(self, shot: Shot, scene: SceneInfo, audio: ShotAudio, cast: Cast,
               knobs: VideoKnobs, clip_path: Path, masks_path: Path) -> VideoResult:
        """Render `shot` into `clip_path` (H.264 + AAC) and `masks_path` (router masks npz)."""
        _check_size(knobs)
        W, H, fps = knobs.width, knobs.height, knobs.fps
        frames = max(1, int(round(max(shot.duration, audio.duration) * fps)))
        labels = list(shot.characters)
        placements = stage(shot, scene, W, H)
        sprites = []
        for p in placements:
            try:
                spec = cast.by_id(p.character)
            except KeyError:
                raise ToolError(f"shot {shot.id} names {p.character!r}, who is not in the cast",
                                "add the character to cast.yaml or fix the shot") from None
            portrait = load_portrait(spec.images[0], spec.face_box, spec.mouth)
            margin = int(0.12 * p.face_h) + 4
            sprite = StagedSprite(portrait, p, W, H, dilation=max(0, knobs.mask_dilation), margin=margin)
            dx, dy = head_track(knobs.seed, p.character, audio, frames, fps, p.face_h)
            sprites.append((labels.index(p.character), sprite, dx, dy,
                            blink_track(knobs.seed, p.character, frames, fps)))
        tracks = mouth_tracks(audio, labels, frames, fps, knobs.offset_frames)
        focus = focus_of(shot) if labels else None
        background = shot_background(scene.heading, Path(scene.background) if scene.background else None,
                                     shot.framing, side_of(focus, scene) if focus else 0.0, W, H)
        target = (W / 2, H / 2)
        for k, sprite, *_ in sprites:
            if labels[k] == focus:
                x, y, w, h = sprite.face
                target = (sprite.x + x + w / 2, sprite.y + y + h / 2)
        cams = camera_matrices(knobs.camera or shot.camera, frames, W, H, target)
        overlays = build_overlays(audio, cast, W, H, knobs.subtitles, knobs.lower_thirds)
        has_audio = Path(audio.wav_path).is_file() if audio.wav_path else False
        with ClipWriter(clip_path, W, H, fps, audio.wav_path if has_audio else None) as clip, \
                MaskWriter(masks_path, labels, H, W, frames=frames) as masks:
            for f in range(frames):
                frame = background.copy()
                mask = np.zeros((H, W), np.uint8)
                boxes = np.full((len(labels), 4), np.nan, np.float32)
                for k, sprite, dx, dy, blinks in sprites:
                    opening, width = tracks[labels[k]]
                    sprite.composite(frame, mask, k + 1, int(dx[f]), int(dy[f]),
                                     float(opening[f]), float(width[f]), float(blinks[f]))
                    boxes[k] = sprite.face_box(int(dx[f]), int(dy[f]), W, H)
                if cams is not None:
                    frame, mask, boxes = apply_camera(frame, mask, boxes, cams[f])
                draw_overlays(frame, overlays, (f + 0.5) / fps)
                clip.write(frame)
                masks.write(mask, boxes)
        return VideoResult(clip_path=Path(clip_path), masks_path=Path(masks_path), frames=frames, fps=fps)


def create() -> AnimaticRenderer:
    """Registry factory; size, fps and overlays travel per shot in `VideoKnobs`."""
    return AnimaticRenderer()
