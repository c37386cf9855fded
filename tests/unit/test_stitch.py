"""Stitching real clips: codecs, frame-exact length, speech where the lines are, srt and otio."""
from __future__ import annotations

import av
import numpy as np
import pytest
import soundfile as sf

from tools.media.audio import read_audio
from tools.media.video import ClipWriter
from tools.stitch import StitchShot, srt_text, stitch_film

SR, FPS = 24000, 25


def _shot(tmp, name, seconds, line_at, colour):
    n = int(seconds * SR)
    wav = np.zeros(n, np.float32)
    t = np.arange(int(0.8 * SR)) / SR
    i = int(line_at * SR)
    wav[i : i + len(t)] = 0.3 * np.sin(2 * np.pi * 220 * t)
    audio = tmp / f"{name}.wav"
    sf.write(audio, wav, SR, subtype="PCM_16")
    clip = tmp / f"{name}.mp4"
    with ClipWriter(clip, 64, 48, FPS, audio) as w:
        for _ in range(int(round(seconds * FPS))):
            w.write(np.full((48, 64, 3), colour, np.uint8))
    return clip, audio


@pytest.mark.parametrize("crossfade", [0.0, 0.4])
def test_stitched_film_is_h264_aac_frame_exact_with_speech_in_place(tmp_path, crossfade):
    specs = [("a", 1.2, 0.2, 40), ("b", 2.0, 0.8, 200)]
    shots, t = [], 0.0
    for name, dur, at, colour in specs:
        clip, audio = _shot(tmp_path, name, dur, at, colour)
        line_wav = tmp_path / f"{name}-line.wav"
        sf.write(line_wav, np.zeros(int(0.8 * SR), np.float32), SR)
        shots.append(StitchShot(name, clip, audio, t, dur, [("x", f"line {name}", t + at, t + at + 0.8, line_wav)]))
        t += dur
    film = tmp_path / "film.mp4"
    loud = stitch_film(shots, film, FPS, SR, crossfade, -16.0, tmp_path / "stems")
    with av.open(str(film)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert v.codec_context.name == "h264" and v.codec_context.pix_fmt == "yuv420p"
        assert a.codec_context.name == "aac"
        assert v.average_rate == FPS
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == round(3.2 * FPS)
    assert abs(frames[0].mean() - 40) < 6 and abs(frames[-1].mean() - 200) < 6
    audio = read_audio(film, SR)
    env = lambda s, e: float(np.sqrt(np.mean(audio[int(s * SR) : int(e * SR)] ** 2)))  # noqa: E731
    assert env(0.3, 0.9) > 20 * env(1.2, 1.9)  # line of shot a vs silence at the start of shot b
    assert env(2.1, 2.7) > 20 * env(2.9, 3.15)  # line of shot b vs its tail
    assert abs(loud["measured_lufs"] - (-16.0)) < 1.0 or loud["gain_db"] < loud["target_lufs"] - loud["measured_lufs"]
    assert sorted(p.name for p in (tmp_path / "stems").iterdir()) == ["x.wav"]


def test_srt_has_real_timings_in_order():
    shots = [StitchShot("a", None, None, 0.0, 2.0, [("red", "Hi.", 0.5, 1.25, None)]),
             StitchShot("b", None, None, 2.0, 2.0, [("blue", "Bye.", 2.5, 3.0, None)])]
    text = srt_text(shots, {"red": "Red"})
    assert text.startswith("1\n00:00:00,500 --> 00:00:01,250\nRed: Hi.\n")
    assert "2\n00:00:02,500 --> 00:00:03,000\nblue: Bye." in text
