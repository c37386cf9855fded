"""The `avdit` video backend renders a shot end to end with tiny random weights: a decodable clip
with the shot's audio, and router masks that follow the layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from orchestrator.config import AvditConfig, RenderConfig
from orchestrator.context import backend_options
from orchestrator.schema.cast import Cast
from orchestrator.schema.plan import (
    Anchor,
    CaptionPart,
    OmniCaption,
    SceneInfo,
    Shot,
    SpeechSegment,
)
from tools.base import (
    ShotAudio,
    SpeechResult,
    SpokenLine,
    ToolError,
    VideoGenerator,
    VideoKnobs,
)
from tools.media.audio import read_audio
from tools.media.masks import load_masks
from tools.media.video import count_frames, read_frames

RATE = 24000


def tone(path: Path, seconds: float, freq: float) -> SpeechResult:
    t = np.arange(int(seconds * RATE)) / RATE
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), RATE)
    return SpeechResult(wav_path=path, duration=seconds, sample_rate=RATE)


def make_shot(tmp_path: Path):
    cast = Cast.model_validate({"characters": [
        {"id": cid, "name": cid.title(), "trigger": cid.upper(), "images": [f"{cid}.png"],
         "voice": {"reference": f"{cid}.wav", "transcript": "hello"}} for cid in ("collins", "hopper")
    ]})
    caption = OmniCaption(
        anchors=[Anchor(token="<sub1>", character="collins", label="the astronaut (COLLINS)", visual="white suit", voice="calm"),
                 Anchor(token="<sub2>", character="hopper", label="the admiral (HOPPER)", visual="uniform", voice="dry")],
        scene="two-shot, night, observatory.",
        parts=[CaptionPart(kind="speech", text="Look up.", anchor="<sub1>"),
               CaptionPart(kind="speech", text="I see it.", anchor="<sub2>")],
    )
    shot = Shot(id="sc01_sh01", scene=1, framing="two-shot", characters=["collins", "hopper"], duration=0.8,
                speech=[SpeechSegment(line_id="sc01_l01", speaker="collins", text="Look up."),
                        SpeechSegment(line_id="sc01_l02", speaker="hopper", text="I see it.", start=0.3)],
                caption=caption, caption_text=caption.render())
    a = tone(tmp_path / "speech-sc01_l01.wav", 0.4, 220.0)
    b = tone(tmp_path / "speech-sc01_l02.wav", 0.4, 330.0)
    mix = np.zeros(int(0.8 * RATE), np.float32)
    mix[: len(sf.read(a.wav_path)[0])] += sf.read(a.wav_path)[0]
    mix[int(0.3 * RATE): int(0.3 * RATE) + len(sf.read(b.wav_path)[0])] += sf.read(b.wav_path)[0]
    sf.write(tmp_path / "shot.wav", mix, RATE)
    audio = ShotAudio(wav_path=tmp_path / "shot.wav", sample_rate=RATE, duration=0.8, lines=[
        SpokenLine("sc01_l01", "collins", "Look up.", 0.0, a), SpokenLine("sc01_l02", "hopper", "I see it.", 0.3, b)])
    scene = SceneInfo(index=1, heading="INT. OBSERVATORY - NIGHT", characters=["collins", "hopper"])
    return shot, scene, audio, cast


def test_avdit_backend_renders_a_shot(tmp_path):
    from tools.video.avdit import create

    config = RenderConfig(video="avdit", avdit=AvditConfig(tiny=True, steps=2))
    gen = create(**backend_options(config, "avdit"))
    assert isinstance(gen, VideoGenerator)
    shot, scene, audio, cast = make_shot(tmp_path)
    knobs = VideoKnobs(width=96, height=64, fps=10, mask_dilation=1)
    out_dir = tmp_path / "attempt-1"
    result = gen.render(shot, scene, audio, cast, knobs, out_dir / "clip.mp4", out_dir / "masks.npz")
    assert result.frames == 8 and count_frames(result.clip_path) == 8
    frames = list(read_frames(result.clip_path))
    assert frames[0].shape == (64, 96, 3) and np.std(frames[0]) > 1.0  # decoded content, not a flat frame
    assert np.abs(read_audio(result.clip_path, 16000)).max() > 0.05  # the shot's speech is muxed in
    masks = load_masks(result.masks_path)
    assert masks["masks"].shape == (8, 64, 96) and list(masks["labels"]) == ["collins", "hopper"]
    assert masks["face_boxes"].shape == (8, 2, 4)
    # Screen order: collins' pixels lie left of hopper's.
    m = masks["masks"][0]
    for k in (1, 2):
        assert (m == k).any()
    assert np.nonzero(m == 1)[1].mean() < np.nonzero(m == 2)[1].mean()
    assert not list(out_dir.glob(".*tmp*"))  # nothing half-written left behind


def test_avdit_backend_refuses_real_mode_without_a_gpu(monkeypatch):
    from tools.video.avdit import create

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ToolError) as err:
        create(**backend_options(RenderConfig(video="avdit"), "avdit"))
    assert "needs a CUDA GPU" in err.value.message
    assert "render.avdit.tiny: true" in err.value.fix and "render.video: animatic" in err.value.fix


def test_avdit_backend_on_a_gpu_names_the_missing_adapter_then_the_missing_model(monkeypatch, tmp_path):
    """Past the GPU check (patched here, so it runs anywhere), each missing setting is named in turn,
    and the model layer's error comes out as a ToolError with its fix."""
    from tools.video.avdit import create

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ToolError) as err:
        create(**backend_options(RenderConfig(video="avdit"), "avdit"))
    assert "render.avdit.adapter is not set" in err.value.message and "compose train" in err.value.fix
    config = RenderConfig(video="avdit", avdit=AvditConfig(adapter=tmp_path / "adapter.safetensors",
                                                           model_dir=tmp_path / "no-such-wan"))
    with pytest.raises(ToolError) as err:
        create(**backend_options(config, "avdit"))
    assert "avdit.model_dir" in str(err.value) and "no-such-wan" in str(err.value)
    assert isinstance(err.value.__cause__, ValueError)  # the model layer's ModelError, wrapped
