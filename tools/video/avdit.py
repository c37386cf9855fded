"""Video backend `avdit`: the audio-driven, character-customised Wan model of `models/avdit`.

Same protocol and files as the animatic: `clip.mp4` (H.264 + AAC, the shot's mixed audio) and
`masks.npz` (per-frame router masks, labels in the shot's character order, face boxes). Each
character present gets one speech stream holding only their own lines, placed at their start.
`render.avdit.tiny: true` builds tiny random models (smoke runs and tests); otherwise the weights
come from the configured local folders and a CUDA GPU is required. `render.avdit.format` picks the
weights: `ours` (Wan T2V + our trained adapter) or a MeiGen-AI release (`multitalk`, `infinitetalk`:
Wan I2V, the first frame being the animatic's staged frame of the shot; see `render_release`).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from models.errors import ModelError
from orchestrator.schema.cast import Cast
from orchestrator.schema.plan import SceneInfo, Shot
from tools.base import ShotAudio, ToolError, VideoKnobs, VideoResult

WAV_RATE = 16000
TINY_WIDTH = 64  # internal render width of the tiny model; frames are resized to the knobs' size


@contextmanager
def model_errors():
    """Report the model layer's errors as this tool's errors (exit 2 with the fix)."""
    try:
        yield
    except ModelError as exc:
        raise ToolError(exc.message, exc.fix) from exc


def layout_boxes(count: int) -> torch.Tensor:
    """(S, 4) boxes (fractions of the frame), characters left to right in screen order."""
    if count == 1:
        return torch.tensor([[0.25, 0.1, 0.75, 1.0]])
    margin = 0.08 / count
    return torch.tensor([[i / count + margin, 0.15, (i + 1) / count - margin, 1.0] for i in range(count)])


def token_labels(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """(height, width) router labels of the token grid from a pixel label mask: each token takes the
    label of the pixel at its centre."""
    ys = ((np.arange(height) + 0.5) * mask.shape[0] / height).astype(int)
    xs = ((np.arange(width) + 0.5) * mask.shape[1] / width).astype(int)
    return mask[np.ix_(ys, xs)].astype(np.int64)


def face_boxes(mask: np.ndarray, count: int) -> np.ndarray:
    """(K, 4) face boxes: the top 30% of each character's mask, middle 60% of its width; NaN if absent."""
    boxes = np.full((count, 4), np.nan, np.float32)
    for k in range(count):
        ys, xs = np.nonzero(mask == k + 1)
        if len(xs):
            x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
            w, h = x1 - x0, y1 - y0
            boxes[k] = (x0 + 0.2 * w, y0, x1 - 0.2 * w, y0 + 0.3 * h)
    return boxes


def dilate(mask: np.ndarray, pixels: int, count: int) -> np.ndarray:
    """Grow each character's region by `pixels` into the background (knob `mask_dilation`)."""
    if pixels <= 0:
        return mask
    import cv2

    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)
    out = mask.copy()
    for k in range(1, count + 1):
        grown = cv2.dilate((mask == k).astype(np.uint8), kernel) > 0
        out[grown & (out == 0)] = k
    return out


class AvditVideoGenerator:
    """`VideoGenerator` over `models.avdit.pipeline.AvditPipeline`."""

    name = "avdit"
    version = "2"

    def __init__(self, pipeline, tiny: bool, steps: int = 30, text_scale: float = 5.0, audio_scale: float = 9.0,
                 guidance: str = "region", id_scale: float = 1.0, mask_source: Optional[str] = None,
                 router_threshold: float = 0.5, streaming=None):
        self.pipeline, self.tiny, self.streaming = pipeline, tiny, streaming
        self.steps, self.text_scale, self.audio_scale = steps, text_scale, audio_scale
        self.guidance, self.id_scale = guidance, id_scale
        self.mask_source, self.router_threshold = mask_source, router_threshold
        # Retries raise audio guidance only where this mode has any (none/text have no audio CFG).
        self.default_audio_guidance = audio_scale if guidance in ("global", "region", "multitalk") else None
        self.loaded: set[str] = set()  # character LoRAs already in the transformer

    def activate_loras(self, shot: Shot, cast: Cast) -> None:
        """Load (once) the character files of the shot's characters (appearance LoRA, and the learned
        audio tokens of stage d) and activate them."""
        for cid in shot.characters:
            spec = cast.by_id(cid)
            if spec.lora is not None and cid not in self.loaded:
                with model_errors():
                    self.pipeline.load_character(cid, spec.lora)
                self.loaded.add(cid)
        self.pipeline.use_characters([c for c in shot.characters if c in self.loaded])

    def speech_streams(self, shot: Shot, audio: ShotAudio, knobs: VideoKnobs) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, T) 16 kHz streams, one per character in the shot, and which of them speak."""
        from tools.media.audio import read_audio

        total = int(round(audio.duration * WAV_RATE))
        shift = knobs.offset_frames / knobs.fps  # re-alignment knob: positive delays the speech
        streams = np.zeros((len(shot.characters), total), np.float32)
        for line in audio.lines:
            if line.speaker not in shot.characters:
                continue
            wav = read_audio(Path(line.speech.wav_path), WAV_RATE)
            start = max(0, int(round((line.start + shift) * WAV_RATE)))
            part = wav[: max(0, total - start)]
            streams[shot.characters.index(line.speaker), start:start + len(part)] += part
        speaking = torch.tensor([bool(np.any(s)) for s in streams])
        return torch.from_numpy(streams), speaking

    def token_groups(self, prompt: str, offsets, shot: Shot, cast: Cast) -> list[list[int]]:
        """Each character's prompt tokens: their anchor (<subN>) and trigger word."""
        from models.avdit.router import token_groups, word_spans

        anchors = {a.character: a.token for a in shot.caption.anchors}
        spans = []
        for cid in shot.characters:
            words = [w for w in (anchors.get(cid), cast.by_id(cid).trigger) if w]
            spans.append(word_spans(prompt, words))
        return token_groups(offsets, spans)

    def render(self, shot: Shot, scene: SceneInfo, audio: ShotAudio, cast: Cast, knobs: VideoKnobs,
               clip_path: Path, masks_path: Path) -> VideoResult:
        """Generate the shot with the diffusion model and write clip.mp4 + masks.npz."""
        from models.avdit.guidance import Guidance
        from models.avdit.router import labels_to_video
        from tools.media.masks import MaskWriter
        from tools.media.video import ClipWriter

        if not shot.characters:
            raise ToolError(f"{shot.id}: the avdit backend needs at least one character in the shot", "use the animatic for empty shots")
        if self.streaming is not None:
            return self.render_release(shot, scene, audio, cast, knobs, clip_path, masks_path)
        if not self.tiny:
            self.activate_loras(shot, cast)
        fps, width, height = knobs.fps, knobs.width, knobs.height
        n_out, num_frames, (gw, gh), prompt, scale = self.shot_sizes(shot, audio, knobs)
        embeds, lens, offsets = self.pipeline.prompt_encoder([prompt, ""])
        streams, speaking = self.speech_streams(shot, audio, knobs)
        with model_errors():
            out = self.pipeline(
                embeds[:1], embeds[1:], streams, layout_boxes(len(shot.characters)), num_frames, gh, gw, fps,
                text_lens=lens[:1], negative_lens=lens[1:], token_groups=self.token_groups(prompt, offsets[0], shot, cast),
                speaking=speaking, steps=self.steps,
                # Random tiny weights carry no attention evidence: their masks stay on the layout boxes.
                mask_source=self.mask_source or ("boxes" if self.tiny else "attention"),
                guidance=Guidance(self.guidance, self.text_scale, scale, self.id_scale),
                characters=list(shot.characters), router_threshold=self.router_threshold,
                generator=torch.Generator().manual_seed(knobs.seed),
            )
        masks = labels_to_video(out.labels, num_frames, height, width).numpy()
        count = len(shot.characters)
        with ClipWriter(clip_path, width, height, fps, audio_path=audio.wav_path) as clip, \
                MaskWriter(masks_path, shot.characters, height, width) as mask_writer:
            for i in range(n_out):
                frame = out.video[min(i, len(out.video) - 1)]
                if frame.shape[:2] != (height, width):
                    import cv2

                    frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)
                mask = dilate(masks[min(i, len(masks) - 1)], knobs.mask_dilation, count)
                clip.write(np.ascontiguousarray(frame))
                mask_writer.write(mask, face_boxes(mask, count))
        return VideoResult(clip_path=Path(clip_path), masks_path=Path(masks_path), frames=n_out, fps=fps)

    def shot_sizes(self, shot: Shot, audio: ShotAudio, knobs: VideoKnobs):
        """Frames to write, frames to generate (4k+1), the generation size (multiples of 16), the
        prompt and the audio guidance scale of this attempt."""
        from models.avdit.audio import video_frames_for

        w, h = knobs.width, knobs.height
        size = (TINY_WIDTH, max(16, round(TINY_WIDTH * h / w / 16) * 16)) if self.tiny else (w // 16 * 16, h // 16 * 16)
        scale = self.audio_scale if knobs.audio_guidance is None else knobs.audio_guidance
        return (max(1, int(round(audio.duration * knobs.fps))), video_frames_for(audio.duration, knobs.fps), size,
                shot.caption_text or shot.caption.render(), scale)

    def render_release(self, shot: Shot, scene: SceneInfo, audio: ShotAudio, cast: Cast, knobs: VideoKnobs,
                       clip_path: Path, masks_path: Path) -> VideoResult:
        """A released adapter (I2V): the animatic stages the shot first (into the same paths), its
        first frame conditions the model and its first router mask binds the speech streams."""
        import cv2

        from models.avdit.guidance import Guidance
        from tools.media.masks import MaskWriter, load_masks
        from tools.media.video import ClipWriter, read_frames
        from tools.video.animatic.renderer import AnimaticRenderer

        fps, width, height = knobs.fps, knobs.width, knobs.height
        staged = replace(knobs, subtitles=False, lower_thirds=False)
        AnimaticRenderer().render(shot, scene, audio, cast, staged, clip_path, masks_path)
        first = next(read_frames(clip_path))
        staged_mask = load_masks(masks_path)["masks"][0]
        n_out, num_frames, (gw, gh), prompt, scale = self.shot_sizes(shot, audio, knobs)
        frame = cv2.resize(first, (gw, gh), interpolation=cv2.INTER_AREA)
        labels = token_labels(staged_mask, gw // 16, gh // 16)
        embeds, _, _ = self.pipeline.prompt_encoder([prompt, ""])
        streams, speaking = self.speech_streams(shot, audio, knobs)
        with model_errors():
            out = self.pipeline(
                embeds[:1], embeds[1:], streams, frame, torch.from_numpy(labels), num_frames, fps,
                speaking=speaking, steps=self.steps, guidance=Guidance(self.guidance, self.text_scale, scale),
                streaming=self.streaming, generator=torch.Generator().manual_seed(knobs.seed),
            )
        count = len(shot.characters)
        mask = dilate(staged_mask, knobs.mask_dilation, count)
        with ClipWriter(clip_path, width, height, fps, audio_path=audio.wav_path) as clip, \
                MaskWriter(masks_path, shot.characters, height, width) as mask_writer:
            for i in range(n_out):
                clip.write(np.ascontiguousarray(cv2.resize(out.video[min(i, len(out.video) - 1)], (width, height),
                                                           interpolation=cv2.INTER_LINEAR)))
                mask_writer.write(mask, face_boxes(mask, count))
        return VideoResult(clip_path=Path(clip_path), masks_path=Path(masks_path), frames=n_out, fps=fps)


def tiny_pipeline(seed: int = 0, adapter: Optional[Path] = None):
    """The pipeline with tiny random models (CPU), for tests and smoke runs; with `adapter` (one that
    `compose train --tiny` wrote), its audio layers and router head are loaded on top."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from models.avdit.pipeline import AvditPipeline, build_with_adapter
    from models.avdit.tiny import TinyPrompt, tiny_model, tiny_vae

    model = tiny_model(seed)
    if adapter is not None:
        with model_errors():
            model = build_with_adapter(model.transformer, model.audio_encoder, adapter).eval()
    return AvditPipeline(model, tiny_vae(), FlowMatchEulerDiscreteScheduler(shift=3.0), TinyPrompt())


FORMAT_DEFAULTS = {  # steps, audio scale, guidance, flow shift
    "ours": (30, 9.0, "region", 3.0),
    "multitalk": (40, 4.0, "multitalk", 7.0),  # the releases' defaults at 480p
    "infinitetalk": (40, 4.0, "multitalk", 7.0),
}


def create(model_dir: Optional[Path] = None, wav2vec_dir: Optional[Path] = None, adapter: Optional[Path] = None,
           steps: Optional[int] = None, text_scale: float = 5.0, audio_scale: Optional[float] = None,
           guidance: Optional[str] = None, id_scale: float = 1.0, mask_source: Optional[str] = None,
           router_threshold: float = 0.5, tiny: bool = False, format: str = "ours", shift: Optional[float] = None,
           window: int = 81, motion_frames: int = 9, offload: bool = False, lora: Optional[Path] = None,
           lora_scale: float = 1.0) -> AvditVideoGenerator:
    """Registry factory (`render.avdit`): tiny random models, or local weights on a CUDA GPU."""
    d_steps, d_scale, d_guidance, d_shift = FORMAT_DEFAULTS[format]
    guidance = guidance or d_guidance
    knobs = dict(steps=steps or d_steps, text_scale=text_scale, audio_scale=d_scale if audio_scale is None else audio_scale,
                 guidance=guidance, id_scale=id_scale, mask_source=mask_source, router_threshold=router_threshold)
    if format != "ours":
        return create_release(format, model_dir, wav2vec_dir, adapter, knobs, shift or d_shift,
                              dict(window=window, motion_frames=motion_frames, offload=offload, lora=lora,
                                   lora_scale=lora_scale), tiny)
    if lora is not None:
        raise ToolError("render.avdit.lora is for a released adapter's base model",
                        "set render.avdit.format: multitalk (or infinitetalk), or train character LoRAs with compose train")
    if guidance == "multitalk":
        raise ToolError("render.avdit.guidance multitalk needs a released adapter",
                        "set render.avdit.format: multitalk (or infinitetalk), or use guidance region")
    if tiny:
        return AvditVideoGenerator(tiny_pipeline(adapter=adapter), True, **knobs)
    if not torch.cuda.is_available():
        raise ToolError(
            "the avdit video backend needs a CUDA GPU for real weights",
            "run on a GPU machine, set render.avdit.tiny: true for a smoke run, or use render.video: animatic",
        )
    from models.avdit.pipeline import AvditPipeline

    if adapter is None:
        raise ToolError("render.avdit.adapter is not set", "train one with `compose train` stages a -> b (or d; "
                        "see models/README.md) and point render.avdit.adapter at adapter.safetensors")
    with model_errors():
        pipe = AvditPipeline.from_local(model_dir, wav2vec_dir, adapter)
    return AvditVideoGenerator(pipe, False, **knobs)


def create_release(format: str, model_dir, wav2vec_dir, adapter, knobs: dict, shift: float, extra: dict,
                   tiny: bool) -> AvditVideoGenerator:
    """The generator over a MultiTalk/InfiniteTalk adapter (Wan I2V); tiny: random tiny models, with
    `adapter` (a tiny file in the release's key names) loaded strictly and `extra["lora"]` fused when given."""
    from models.avdit.i2v import Streaming

    if knobs["guidance"] != "multitalk":
        raise ToolError(f"render.avdit.guidance {knobs['guidance']} does not fit format {format}",
                        "use guidance: multitalk (or leave it out) with a released adapter")
    if knobs["mask_source"] not in (None, "boxes"):
        raise ToolError(f"render.avdit.mask_source {knobs['mask_source']} does not fit format {format}",
                        "leave mask_source out: a released adapter binds by the staged frame's masks")
    with model_errors():
        streaming = Streaming(extra["window"], extra["motion_frames"])
        if tiny:
            from models.avdit.lora import fuse_speed_lora
            from models.avdit.tiny import tiny_release_pipeline
            from models.loading import load_state_dict

            sd = load_state_dict(adapter, "avdit.adapter") if adapter is not None else None
            pipe = tiny_release_pipeline(adapter_sd=sd)
            pipe.scheduler = type(pipe.scheduler)(shift=shift)
            if extra["lora"] is not None:
                fuse_speed_lora(pipe.model.transformer, extra["lora"], extra["lora_scale"])
            return release_version(AvditVideoGenerator(pipe, True, streaming=streaming, **knobs), format, knobs, shift,
                                   extra, adapter, tiny)
    if not torch.cuda.is_available():
        raise ToolError(f"the avdit backend needs a CUDA GPU for the {format} weights",
                        "run on a GPU machine, set render.avdit.tiny: true for a smoke run, or use render.video: animatic")
    from models.avdit.i2v import I2VPipeline

    with model_errors():
        pipe = I2VPipeline.from_local(model_dir, wav2vec_dir, adapter, format, shift=shift, offload=extra["offload"],
                                      lora=extra["lora"], lora_scale=extra["lora_scale"])
    return release_version(AvditVideoGenerator(pipe, False, streaming=streaming, **knobs), format, knobs, shift, extra,
                           adapter, tiny)


def release_version(gen: AvditVideoGenerator, format: str, knobs: dict, shift: float, extra: dict, adapter,
                    tiny: bool) -> AvditVideoGenerator:
    """Name the weights and settings in the generator's version, which joins every shot's cache key,
    so a clip made with one format, adapter or setting is never reused for another."""
    import hashlib
    import json

    settings = json.dumps([format, knobs, shift, extra, str(adapter), tiny], sort_keys=True, default=str)
    gen.version = f"{AvditVideoGenerator.version}-{format}-{hashlib.sha256(settings.encode()).hexdigest()[:12]}"
    return gen
