"""Shared media helpers: stream frames into an H.264 + AAC clip, stream router masks into an npz,
and read both back.

Writers never hold a whole shot in memory: frames go straight down a pipe to ffmpeg (the
imageio-ffmpeg binary, there is no system ffmpeg), masks go to a spool file that is packed into the
npz on close. Both write to a temporary name and `os.replace` it into place, so a crash never leaves
a half-written artifact under the final name.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from tools.base import ToolError


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped with imageio-ffmpeg."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a requirement
        raise ToolError("imageio-ffmpeg is not installed", "pip install imageio-ffmpeg") from exc
    return imageio_ffmpeg.get_ffmpeg_exe()


def _tmp_name(path: Path) -> Path:
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
        self._tmp = _tmp_name(self.clip_path)
        self._video_tmp = _tmp_name(self.clip_path.with_name(self.clip_path.stem + "-picture.mp4"))
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


class MaskWriter:
    """Stream per-frame label masks and face boxes into masks.npz (see tools.base.MASKS_NPZ).

    With `frames` known up front the npy header is written first and every mask is deflated into
    the zip entry on a background thread (zlib releases the GIL, so packing overlaps rendering).
    Without it, frames are spooled raw to a file next to the target and packed on close. Either
    way memory stays flat however long the shot is.
    """

    QUEUE = 8  # masks in flight to the packing thread

    def __init__(self, masks_path: Path, labels: Sequence[str], height: int, width: int,
                 frames: Optional[int] = None):
        self.masks_path = Path(masks_path)
        self.labels = list(labels)
        self.height, self.width = height, width
        self.declared = frames
        self.frames = 0
        self._boxes: list[np.ndarray] = []  # F x K x 4 float32: tiny next to the masks
        self._spool = None
        self._tmp = _tmp_name(self.masks_path)
        self._zip = self._entry_fh = self._queue = self._thread = None
        self._error: Optional[BaseException] = None

    def __enter__(self) -> "MaskWriter":
        self.masks_path.parent.mkdir(parents=True, exist_ok=True)
        if self.declared is None:
            self._spool = tempfile.TemporaryFile(dir=self.masks_path.parent)
            return self
        import queue
        import threading

        self._zip = zipfile.ZipFile(self._tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)
        self._entry_fh = self._zip.open(_entry("masks.npy"), "w", force_zip64=True)
        np.lib.format.write_array_header_2_0(self._entry_fh, self._header(self.declared))
        self._queue = queue.Queue(maxsize=self.QUEUE)
        self._thread = threading.Thread(target=self._pack_stream, daemon=True)
        self._thread.start()
        return self

    def _header(self, frames: int) -> dict:
        return {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                "shape": (frames, self.height, self.width)}

    def _pack_stream(self) -> None:
        try:
            while (chunk := self._queue.get()) is not None:
                self._entry_fh.write(chunk)
        except BaseException as exc:  # reported by the writer thread on its next call
            self._error = exc
            while self._queue.get() is not None:  # drain so the producer never blocks
                pass

    def write(self, mask: np.ndarray, face_boxes: np.ndarray) -> None:
        """Append one HxW uint8 label mask and its (K, 4) x0,y0,x1,y1 face boxes (NaN: unseen)."""
        if mask.shape != (self.height, self.width) or mask.dtype != np.uint8:
            raise ToolError(f"mask of shape {mask.shape} {mask.dtype} does not fit "
                            f"{self.width}x{self.height}", "pass HxW uint8 label masks")
        if self.declared is not None and self.frames >= self.declared:
            raise ToolError(f"more than the {self.declared} declared frames written to {self.masks_path}",
                            "declare the shot's real frame count")
        if self._error is not None:
            raise ToolError(f"cannot write {self.masks_path}: {self._error}", "check the disk space")
        boxes = np.asarray(face_boxes, dtype=np.float32).reshape(len(self.labels), 4)
        data = np.ascontiguousarray(mask).tobytes()
        if self._spool is not None:
            self._spool.write(data)
        else:
            self._queue.put(data)
        self._boxes.append(boxes)
        self.frames += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self._spool is not None:
                if exc_type is None:
                    self._pack_spool()
                return
            self._queue.put(None)
            self._thread.join()
            self._entry_fh.close()
            if exc_type is None:
                if self._error is not None:
                    raise ToolError(f"cannot write {self.masks_path}: {self._error}", "check the disk space")
                if self.frames != self.declared:
                    raise ToolError(f"{self.frames} of {self.declared} declared frames written to "
                                    f"{self.masks_path}", "declare the shot's real frame count")
                self._write_small(self._zip)
            self._zip.close()
            if exc_type is None:
                os.replace(self._tmp, self.masks_path)
        finally:
            if self._spool is not None:
                self._spool.close()
            self._tmp.unlink(missing_ok=True)

    def _write_small(self, zf: zipfile.ZipFile) -> None:
        k = len(self.labels)
        boxes = np.stack(self._boxes) if self._boxes else np.zeros((0, k, 4), np.float32)
        labels = np.array(self.labels, dtype=str) if k else np.zeros((0,), dtype="<U1")
        for name, arr in (("labels", labels), ("face_boxes", boxes)):
            with zf.open(_entry(f"{name}.npy"), "w") as fh:
                np.lib.format.write_array(fh, arr, allow_pickle=False)

    def _pack_spool(self) -> None:
        with zipfile.ZipFile(self._tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            # Fixed entry times: the same masks must give the same bytes (cache digests).
            with zf.open(_entry("masks.npy"), "w", force_zip64=True) as fh:
                np.lib.format.write_array_header_2_0(fh, self._header(self.frames))
                self._spool.seek(0)
                while chunk := self._spool.read(1 << 22):
                    fh.write(chunk)
            self._write_small(zf)
        os.replace(self._tmp, self.masks_path)


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def load_masks(masks_path: Path) -> dict[str, np.ndarray]:
    """Read masks.npz into a dict with `masks` (F,H,W) uint8, `labels` (K,) str, `face_boxes`."""
    path = Path(masks_path)
    if not path.is_file():
        raise ToolError(f"masks file {path} does not exist", "render the shot first")
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in ("masks", "labels", "face_boxes")}


def read_frames(clip_path: Path) -> Iterator[np.ndarray]:
    """Decode a video file frame by frame as HxWx3 uint8 RGB."""
    import av

    with av.open(str(clip_path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def read_audio(path: Path, sr: int) -> np.ndarray:
    """Decode the first audio stream of a wav or video file as float32 mono at `sr` Hz."""
    import av

    chunks = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ToolError(f"{path} has no audio stream", "mux the shot audio into the clip")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as exc:
        raise ToolError(f"cannot decode audio from {path}: {exc}", "pass a wav or mp4 file") from exc
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def count_frames(clip_path: Path) -> int:
    """Number of video frames in a clip (from the container, decoding only when it does not say)."""
    import av

    with av.open(str(clip_path)) as container:
        n = container.streams.video[0].frames
    return n if n > 0 else sum(1 for _ in read_frames(clip_path))
