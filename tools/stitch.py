"""Stitching: shots into film.mp4 (H.264 + AAC), dialogue stems, film.srt and film.otio.

Video: with no crossfade the shots' H.264 streams are joined without re-encoding (exact and fast);
with a crossfade every frame is decoded and blended around each cut, keeping each shot's length, so
the film always lasts the sum of its shots. Audio: each shot's dialogue is placed with pydub at the
shot's start and the mix is normalised to an integrated loudness target (ITU-R BS.1770 through
pyloudnorm) with a -1 dBFS peak ceiling.
"""
from __future__ import annotations

import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pyloudnorm
import soundfile as sf
from imageio_ffmpeg import get_ffmpeg_exe

with warnings.catch_warnings():  # pydub warns at import when no ffmpeg is on PATH; we set its path below
    warnings.simplefilter("ignore", RuntimeWarning)
    from pydub import AudioSegment

from tools.base import ToolError
from tools.media.files import temp_path, written_whole

AudioSegment.converter = get_ffmpeg_exe()  # no system ffmpeg: use the one in the imageio-ffmpeg wheel
PEAK_CEILING_DB = -1.0
BITEXACT = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1"]


@dataclass
class StitchShot:
    shot_id: str
    clip: Path  # the accepted attempt's clip.mp4
    audio: Path  # the accepted attempt's shot.wav
    start: float  # seconds from the start of the film
    duration: float
    lines: list[tuple[str, str, float, float, Path]]  # (speaker, text, abs start, abs end, wav)


def _ffmpeg(args: list[str]) -> None:
    proc = subprocess.run([get_ffmpeg_exe(), "-y", "-loglevel", "error", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolError(f"ffmpeg failed: {proc.stderr.strip()[-800:]}", "check the shot clips under shots/")


def concat_video(shots: list[StitchShot], out: Path, crossfade: float, fps: int) -> None:
    """Join the shots' video streams into `out` (no audio)."""
    if crossfade <= 0:
        # Video-only copies first: the concat demuxer offsets each file by its longest stream, and
        # AAC priming makes the audio a little longer than the picture, which would leave gaps.
        parts = [temp_path(out.with_name(f"part{i}.mp4")) for i in range(len(shots))]
        listing = temp_path(out.with_suffix(".txt"))
        try:
            for s, part in zip(shots, parts):
                _ffmpeg(["-i", str(s.clip), "-an", "-c:v", "copy", *BITEXACT, str(part)])
            listing.write_text("".join(f"file '{p.resolve()}'\n" for p in parts))
            _ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-c:v", "copy", *BITEXACT, str(out)])
        finally:
            for p in [listing, *parts]:
                p.unlink(missing_ok=True)
        return
    _blend_concat(shots, out, crossfade, fps)


def _blend_concat(shots: list[StitchShot], out: Path, crossfade: float, fps: int) -> None:
    import av

    from tools.media.video import ClipWriter

    half = max(1, int(round(crossfade * fps / 2)))
    firsts, lasts = [], []
    for s in shots:  # edge frames of every shot, for blending across each cut
        with av.open(str(s.clip)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        firsts.append(frames[0])
        lasts.append(frames[-1])
        del frames
    h, w = firsts[0].shape[:2]
    with ClipWriter(out, w, h, fps) as writer:
        for i, s in enumerate(shots):
            with av.open(str(s.clip)) as c:
                frames = c.decode(video=0)
                n = int(round(s.duration * fps))
                for j, f in enumerate(frames):
                    img = f.to_ndarray(format="rgb24").astype(np.float32)
                    if i + 1 < len(shots) and j >= n - half:  # fade toward the next shot
                        a = 0.5 * (j - (n - half) + 1) / half
                        img = (1 - a) * img + a * firsts[i + 1]
                    if i > 0 and j < half:  # fade in from the previous shot
                        a = 0.5 * (half - j) / half
                        img = (1 - a) * img + a * lasts[i - 1]
                    writer.write(np.clip(img, 0, 255).astype(np.uint8))


def mix_dialogue(shots: list[StitchShot], total: float, sr: int, target_lufs: float) -> tuple[np.ndarray, dict]:
    """The film's dialogue mix as float32 mono, plus loudness figures."""
    mix = AudioSegment.silent(duration=int(round(total * 1000)), frame_rate=sr).set_channels(1)
    for s in shots:
        seg = AudioSegment.from_wav(s.audio).set_frame_rate(sr).set_channels(1)
        mix = mix.overlay(seg, position=int(round(s.start * 1000)))
    data = np.array(mix.get_array_of_samples(), dtype=np.float32) / float(1 << (8 * mix.sample_width - 1))
    data = data[: int(round(total * sr))]
    meter = pyloudnorm.Meter(sr)
    before = float(meter.integrated_loudness(data)) if np.any(data) else float("-inf")
    gain_db = 0.0
    if np.isfinite(before):
        gain_db = target_lufs - before
        peak = float(np.max(np.abs(data)))
        gain_db = min(gain_db, PEAK_CEILING_DB - 20 * np.log10(max(peak, 1e-9)))
        data = data * (10 ** (gain_db / 20))
    after = float(meter.integrated_loudness(data)) if np.any(data) else float("-inf")
    return data.astype(np.float32), {"target_lufs": float(target_lufs), "measured_lufs": float(after), "gain_db": float(gain_db)}


def write_stems(shots: list[StitchShot], total: float, sr: int, folder: Path) -> list[Path]:
    """One dialogue stem per speaking character, lines at their film times (unnormalised)."""
    stems: dict[str, np.ndarray] = {}
    n = int(round(total * sr))
    for s in shots:
        for speaker, _text, start, _end, wav in s.lines:
            data, wsr = sf.read(wav, dtype="float32", always_2d=True)
            if wsr != sr:
                raise ToolError(f"{wav} is {wsr} Hz, the film is {sr} Hz")
            track = stems.setdefault(speaker, np.zeros(n, np.float32))
            i = int(round(start * sr))
            k = min(len(data), n - i)
            if k > 0:
                track[i : i + k] += data[:k, 0]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for speaker, track in sorted(stems.items()):
        p = folder / f"{speaker}.wav"
        with written_whole(p) as tmp:
            sf.write(tmp, np.clip(track, -1, 1), sr, subtype="PCM_16")
        paths.append(p)
    return paths


def srt_time(t: float) -> str:
    ms = int(round(t * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def srt_text(shots: list[StitchShot], names: dict[str, str]) -> str:
    cues = sorted((start, end, speaker, text) for s in shots for speaker, text, start, end, _ in s.lines)
    out = []
    for i, (start, end, speaker, text) in enumerate(cues, 1):
        out.append(f"{i}\n{srt_time(start)} --> {srt_time(end)}\n{names.get(speaker, speaker)}: {text}\n")
    return "\n".join(out)


def otio_timeline(title: str, shots: list[StitchShot], fps: int, names: dict[str, str]) -> str:
    """An editor's timeline: one video clip per shot, one dialogue clip per line on audio tracks."""
    import opentimelineio as otio

    tl = otio.schema.Timeline(name=title)
    video = otio.schema.Track(name="picture", kind=otio.schema.TrackKind.Video)
    rt = lambda sec: otio.opentime.RationalTime(round(sec * fps), fps)  # noqa: E731
    for s in shots:
        ref = otio.schema.ExternalReference(target_url=s.clip.resolve().as_uri(),
                                            available_range=otio.opentime.TimeRange(rt(0), rt(s.duration)))
        video.append(otio.schema.Clip(name=s.shot_id, media_reference=ref,
                                      source_range=otio.opentime.TimeRange(rt(0), rt(s.duration))))
    tl.tracks.append(video)
    by_speaker: dict[str, list] = {}
    for s in shots:
        for speaker, text, start, end, wav in s.lines:
            by_speaker.setdefault(speaker, []).append((start, end, text, wav))
    for speaker, items in sorted(by_speaker.items()):
        track = otio.schema.Track(name=f"dialogue {names.get(speaker, speaker)}", kind=otio.schema.TrackKind.Audio)
        cursor = 0.0
        for start, end, text, wav in sorted(items):
            start = max(start, cursor)  # overlapping lines of one speaker cannot share a track slot
            if start > cursor:
                track.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(rt(0), rt(start - cursor))))
            ref = otio.schema.ExternalReference(target_url=Path(wav).resolve().as_uri())
            track.append(otio.schema.Clip(name=text[:40], media_reference=ref,
                                          source_range=otio.opentime.TimeRange(rt(0), rt(end - start))))
            cursor = start + round((end - start) * fps) / fps
        tl.tracks.append(track)
    return otio.adapters.write_to_string(tl, "otio_json")


def stitch_film(shots: list[StitchShot], out: Path, fps: int, sr: int, crossfade: float,
                target_lufs: float, stems_dir: Optional[Path] = None) -> dict:
    """Write film.mp4 at `out`; returns loudness figures."""
    total = sum(s.duration for s in shots)
    video_tmp = temp_path(out.with_name("video.mp4"))
    audio_tmp = temp_path(out.with_name("mix.wav"))
    film_tmp = temp_path(out)
    try:
        concat_video(shots, video_tmp, crossfade, fps)
        mix, loud = mix_dialogue(shots, total, sr, target_lufs)
        sf.write(audio_tmp, mix, sr, subtype="PCM_16")
        _ffmpeg(["-i", str(video_tmp), "-i", str(audio_tmp), "-map", "0:v", "-map", "1:a", "-c:v", "copy",
                 "-c:a", "aac", "-b:a", "160k", *BITEXACT, "-movflags", "+faststart", str(film_tmp)])
        film_tmp.replace(out)
    finally:
        for p in (video_tmp, audio_tmp, film_tmp):
            p.unlink(missing_ok=True)
    if stems_dir is not None:
        write_stems(shots, total, sr, stems_dir)
    return loud
