"""Video I/O: stream frames into an H.264 + AAC clip, and read frames back.

Writers never hold a whole shot in memory: frames go straight down a pipe to ffmpeg (the
imageio-ffmpeg binary, there is no system ffmpeg). The clip is written to a temporary name and
`os.replace`d into place, so a crash never leaves a half-written clip under the final name.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Collection, Iterator, Optional

import numpy as np

from tools.base import ToolError


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped with imageio-ffmpeg."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a requirement
        raise ToolError("imageio-ffmpeg is not installed", "pip install imageio-ffmpeg") from exc
    return imageio_ffmpeg.get_ffmpeg_exe()


def temp_name(path: Path) -> Path:
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


class ClipWriter:
    """Stream RGB frames (and optionally one audio file) into an H.264 yuv420p + AAC mp4.

    Use as a context manager; `write(frame)` takes an HxWx3 uint8 RGB array. The clip's length is
    set by the frames: audio is padded with silence or cut to match.
    """

    def __init__(
        self,
        clip_path: Path,
        width: int,
        height: int,
        fps: int,
        audio_path: Optional[Path] = None,
        crf: int = 20,
        preset: str = "superfast",
    ):
        if width % 2 or height % 2:
            raise ToolError(
                f"video size {width}x{height} cannot be encoded as yuv420p",
                "use an even width and height (render.width / render.height)",
            )
        if audio_path is not None and not Path(audio_path).is_file():
            raise ToolError(f"audio file {audio_path} does not exist", "synthesize the shot audio first")
        self.clip_path = Path(clip_path)
        self.width, self.height, self.fps = width, height, fps
        self.audio_path = Path(audio_path) if audio_path is not None else None
        self.crf, self.preset = crf, preset
        self.frames = 0
        self._proc: Optional[subprocess.Popen] = None
        self._tmp = temp_name(self.clip_path)
        self._video_tmp = temp_name(self.clip_path.with_name(self.clip_path.stem + "-picture.mp4"))
        self._log = None

    def _command(self) -> list[str]:
        # Picture only while streaming; the audio is muxed on close, once the length is known.
        # (apad + -shortest while streaming is racy: the AAC frame count varied run to run.)
        return [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.width}x{self.height}",
                "-r", str(self.fps), "-i", "pipe:0",
                "-map", "0:v:0", "-c:v", "libx264", "-preset", self.preset, "-crf", str(self.crf),
                "-pix_fmt", "yuv420p", "-f", "mp4", str(self._video_tmp)]

    def _mux_audio(self) -> None:
        """Add the audio, padded with silence or cut to exactly the picture's length."""
        seconds = f"{self.frames / self.fps:.6f}"
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(self._video_tmp),
               "-i", str(self.audio_path), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
               "-c:a", "aac", "-b:a", "160k", "-af", f"apad=whole_dur={seconds},atrim=end={seconds}",
               "-movflags", "+faststart", "-f", "mp4", str(self._tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ToolError(f"ffmpeg could not add {self.audio_path} to {self.clip_path}: "
                            f"{proc.stderr.strip()[-800:]}", "check the audio file")

    def __enter__(self) -> "ClipWriter":
        self.clip_path.parent.mkdir(parents=True, exist_ok=True)
        # stderr goes to a file: a pipe nobody reads could fill up and stall the encoder.
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(self._command(), stdin=subprocess.PIPE, stderr=self._log)
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one HxWx3 uint8 RGB frame."""
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ToolError(
                f"frame of shape {frame.shape} {frame.dtype} does not fit a "
                f"{self.width}x{self.height} clip", "pass HxWx3 uint8 RGB frames")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).data)
        except BrokenPipeError as exc:
            raise ToolError(f"ffmpeg stopped while writing {self.clip_path}: {self._stderr()}",
                            "check the audio file and the disk space") from exc
        self.frames += 1

    def _stderr(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-800:]

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        rc = self._proc.wait()
        err = self._stderr()
        self._log.close()
        try:
            if exc_type is not None or rc != 0 or self.frames == 0:
                self._tmp.unlink(missing_ok=True)
                if exc_type is None:
                    raise ToolError(f"ffmpeg failed to write {self.clip_path} (exit {rc}, "
                                    f"{self.frames} frames): {err}", "check the inputs and disk space")
                return
            if self.audio_path is None:
                os.replace(self._video_tmp, self._tmp)
            else:
                self._mux_audio()
        finally:
            self._video_tmp.unlink(missing_ok=True)
        os.replace(self._tmp, self.clip_path)


def read_frames(clip_path: Path, only: Optional[Collection[int]] = None) -> Iterator[np.ndarray]:
    """Decode a video file frame by frame as HxWx3 uint8 RGB; with `only`, just the frames of those
    indices (every frame is still decoded, but only those are converted to RGB)."""
    import av

    with av.open(str(clip_path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if only is None or i in only:
                yield frame.to_ndarray(format="rgb24")


def count_frames(clip_path: Path) -> int:
    """Number of video frames in a clip (from the container, decoding only when it does not say)."""
    import av

    with av.open(str(clip_path)) as container:
        n = container.streams.video[0].frames
    return n if n > 0 else sum(1 for _ in read_frames(clip_path))
