"""The one home of audio I/O: decoding, resampling and writing mono PCM wavs."""
from __future__ import annotations

import os
import wave
from math import gcd
from pathlib import Path

import numpy as np

from tools.base import ToolError


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


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling (exact rational ratio)."""
    if sr_in == sr_out:
        return audio.astype(np.float32)
    from scipy.signal import resample_poly

    g = gcd(sr_in, sr_out)
    return resample_poly(audio, sr_out // g, sr_in // g).astype(np.float32)


def write_wav(path: Path, audio: np.ndarray, sr: int) -> None:
    """Write mono 16-bit PCM atomically (temp name, then os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sr))
        w.writeframes(pcm.tobytes())
    os.replace(tmp, path)


def load_audio(path: Path) -> tuple[np.ndarray, int]:
    """Decode any soundfile-readable file to float32 mono; ToolError if it cannot be read."""
    import soundfile as sf

    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for corrupt input
        raise ToolError(f"{path}: cannot decode audio ({exc})", "give a wav/flac/ogg file") from exc
    return x.mean(axis=1), int(sr)


def clip_levels(x: np.ndarray, sr: int, hop_s: float = 0.02) -> tuple[float, float]:
    """(speech over floor in dB, clipped share) of a recording: the 95th percentile of its frames' energy
    over the 10th (the pauses: background noise, or digital silence up to 60 dB), and the share of samples
    at full scale. Clean voice clips read 25-75 dB; white noise a tenth of full scale under speech, 13 dB."""
    hop = max(int(sr * hop_s), 1)
    n = len(x) // hop
    if n < 2:
        return 0.0, 0.0
    e = 10 * np.log10(np.mean(np.asarray(x[: n * hop], np.float64).reshape(n, hop) ** 2, axis=1) + 1e-12)
    over = float(min(np.percentile(e, 95) - np.percentile(e, 10), 60.0))
    return over, float(np.mean(np.abs(x) >= 0.999))


VOICING_SR = 16000  # `voiced_share` works at this rate


def voiced_share(x: np.ndarray, sr: int, floor_db: float = 35.0, min_peak: float = 0.6) -> float:
    """The share of a recording's sounding 40 ms frames (within `floor_db` of the loudest, 10 ms apart) that are
    periodic at a voice's pitch, 60-500 Hz: the frame's normalised autocorrelation (corrected for the Hann
    window's own) peaks above `min_peak` at such a lag, past its first dip under 0.2 (a low-passed noise decays
    from lag 0 without one). Speech clips read 0.3-0.9 (a gruff synthetic voice 0.30, telephone-band speakers
    0.43-0.92); white, pink and brown noise 0.00-0.05."""
    x = resample(np.asarray(x, np.float32), sr, VOICING_SR).astype(np.float64)
    n, hop = int(0.04 * VOICING_SR), int(0.01 * VOICING_SR)
    if len(x) < n:
        return 0.0
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop]
    frames = frames - frames.mean(axis=1, keepdims=True)
    e = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    sounding = e > max(e.max() - floor_db, -70.0)
    window = np.hanning(n)

    def autocorrelation(f):
        power = np.abs(np.fft.rfft(f * window, 2 * n)) ** 2
        ac = np.fft.irfft(power)[..., :n]
        return ac / (ac[..., :1] + 1e-12)

    ac = autocorrelation(frames[sounding]) / autocorrelation(np.ones(n))
    lo, hi = VOICING_SR // 500, VOICING_SR // 60
    below = ac[:, 1:hi] < 0.2
    dip = np.where(below.any(axis=1), np.argmax(below, axis=1) + 1, hi)
    past_dip = np.arange(lo, hi)[None, :] >= dip[:, None]
    peak = np.where(past_dip, ac[:, lo:hi], -1.0).max(axis=1)
    return float(np.mean(peak > min_peak)) if len(peak) else 0.0
