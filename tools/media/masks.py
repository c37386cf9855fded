"""masks.npz: per-frame router masks, their labels and face boxes (written streaming, read whole)."""
from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from tools.base import ToolError
from tools.media.video import temp_name


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
        self._tmp = temp_name(self.masks_path)
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
