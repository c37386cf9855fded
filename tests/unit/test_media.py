"""ClipWriter / MaskWriter round trips through real files."""
import av
import numpy as np
import pytest
import soundfile as sf

from tools.base import ToolError
from tools.media.audio import read_audio
from tools.media.masks import MaskWriter, load_masks
from tools.media.video import ClipWriter, count_frames, read_frames


def test_clip_roundtrip_h264_aac(tmp_path):
    sr = 24000
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(1.2 * sr)) / sr)).astype(np.float32)
    sf.write(tmp_path / "a.wav", tone, sr)
    clip = tmp_path / "clip.mp4"
    with ClipWriter(clip, 64, 48, 25, tmp_path / "a.wav") as w:
        for i in range(25):  # 1 s of video, 1.2 s of audio: the frames decide the length
            w.write(np.full((48, 64, 3), i * 10, np.uint8))
    frames = list(read_frames(clip))
    assert len(frames) == 25 == count_frames(clip)
    assert frames[0].shape == (48, 64, 3)
    assert abs(float(frames[20].mean()) - 200) < 4
    picked = list(read_frames(clip, only={0, 7, 24, 99}))  # the contact sheet's: only those frames, in order
    assert len(picked) == 3 and all(np.array_equal(a, frames[i]) for a, i in zip(picked, (0, 7, 24)))
    with av.open(str(clip)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
        assert c.streams.audio[0].codec_context.name == "aac"
    audio = read_audio(clip, 16000)
    assert 0.9 < len(audio) / 16000 < 1.15
    assert np.sqrt(np.mean(audio[2000:12000] ** 2)) > 0.1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_clip_rejects_odd_size_and_wrong_frames(tmp_path):
    with pytest.raises(ToolError, match="even"):
        ClipWriter(tmp_path / "x.mp4", 63, 48, 25)
    with pytest.raises(ToolError, match="does not fit"):
        with ClipWriter(tmp_path / "x.mp4", 64, 48, 25) as w:
            w.write(np.zeros((48, 64), np.uint8))
    assert not (tmp_path / "x.mp4").exists()


def test_masks_roundtrip(tmp_path):
    path = tmp_path / "masks.npz"
    with MaskWriter(path, ["red", "blue"], 30, 40) as m:
        for f in range(7):
            mask = np.zeros((30, 40), np.uint8)
            mask[:, f:f + 5] = 1
            mask[20:, 30:] = 2
            boxes = np.array([[f, 0, f + 5, 10], [np.nan] * 4], np.float32)
            m.write(mask, boxes)
    data = load_masks(path)
    assert data["masks"].shape == (7, 30, 40) and data["masks"].dtype == np.uint8
    assert list(data["labels"]) == ["red", "blue"]
    assert data["face_boxes"].shape == (7, 2, 4)
    assert np.isnan(data["face_boxes"][:, 1]).all() and data["face_boxes"][3, 0, 0] == 3
    assert data["masks"][6, 0, 6] == 1 and data["masks"][6, 25, 35] == 2
    with np.load(path) as z:  # plain np.load works too: no pickles
        assert set(z.files) == {"masks", "labels", "face_boxes"}


def test_streamed_masks_equal_spooled_masks_and_count_is_checked(tmp_path):
    rng = np.random.default_rng(0)
    masks = [(rng.random((36, 64)) * 3).astype(np.uint8) for _ in range(5)]
    boxes = np.array([[1, 2, 3, 4], [np.nan] * 4], np.float32)
    for name, frames in (("spool.npz", None), ("stream.npz", 5)):
        with MaskWriter(tmp_path / name, ["a", "b"], 36, 64, frames=frames) as w:
            for m in masks:
                w.write(m, boxes)
    assert (tmp_path / "spool.npz").read_bytes() == (tmp_path / "stream.npz").read_bytes()
    got = load_masks(tmp_path / "stream.npz")
    assert np.array_equal(got["masks"], np.stack(masks)) and list(got["labels"]) == ["a", "b"]
    with pytest.raises(ToolError, match="declared"):
        with MaskWriter(tmp_path / "short.npz", ["a"], 36, 64, frames=3) as w:
            w.write(masks[0], boxes[:1])
    assert not (tmp_path / "short.npz").exists()
