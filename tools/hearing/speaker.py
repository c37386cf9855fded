"""The speaker encoders shared by voice matching, the speaker evaluator and the benchmarks: an
embedding per clip, cosine similarity, and cached reference embeddings.

Two judges, by name (JUDGES): `resemblyzer` (below), the one voice fitting listens through, and
`dvector` (`tools.hearing.dvector`), an independent encoder the fit search never hears; the speaker
evaluator reports both and a line must pass both. A third, `campplus` (`tools.hearing.campplus`), is
heard by the benchmarks only (BENCH_JUDGES).

Resemblyzer's pretrained GE2E encoder ships inside the `resemblyzer` package (no download). Install
it with `pip install --no-deps resemblyzer` plus `webrtcvad-wheels`, so pip never tries to compile
the original `webrtcvad`. The encoder is loaded once per process.
"""
from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np

from tools.base import ToolError
from tools.media.audio import read_audio

ENCODER_SR = 16000
_LOCK = threading.Lock()
_ENCODER = None


def _encoder():
    global _ENCODER
    with _LOCK:
        if _ENCODER is None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # scipy.ndimage.morphology deprecation inside resemblyzer
                    from resemblyzer import VoiceEncoder
            except ImportError as exc:
                raise ToolError(
                    f"the speaker encoder cannot be imported: {exc}",
                    "pip install webrtcvad-wheels && pip install --no-deps resemblyzer",
                ) from exc
            _ENCODER = VoiceEncoder(device="cpu", verbose=False)
        return _ENCODER


def embed(wav: np.ndarray, sr: int) -> np.ndarray:
    """L2-normalised 256-d speaker embedding of a mono float waveform at rate `sr`."""
    from resemblyzer.audio import normalize_volume, trim_long_silences
    from resemblyzer.hparams import audio_norm_target_dBFS

    from tools.media.audio import resample

    x = resample(np.asarray(wav, np.float32).reshape(-1), int(sr), ENCODER_SR)
    x = normalize_volume(x, audio_norm_target_dBFS, increase_only=True)
    trimmed = trim_long_silences(x)
    if len(trimmed) >= ENCODER_SR // 2:  # the VAD can eat very short or synthetic clips entirely
        x = trimmed
    if len(x) < ENCODER_SR // 4:
        raise ToolError("audio too short for a speaker embedding (< 0.25 s of speech)", "use a longer clip")
    enc = _encoder()
    with _LOCK:  # torch modules are not re-entrant across threads here
        e = enc.embed_utterance(x)
    return (e / (np.linalg.norm(e) + 1e-9)).astype(np.float32)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (1 = same direction)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


JUDGES = ("resemblyzer", "dvector")
# The benchmarks also hear CAM++ (`tools.hearing.campplus`), the strongest of the three on real
# recordings; it takes no part in acceptance or fitting yet.
BENCH_JUDGES = JUDGES + ("campplus",)


def embed_by(judge: str, wav: np.ndarray, sr: int) -> np.ndarray:
    """The embedding of `wav` by the named judge (JUDGES)."""
    if judge == "resemblyzer":
        return embed(wav, sr)
    if judge == "dvector":
        from tools.hearing import dvector

        return dvector.embed(wav, sr)
    if judge == "campplus":
        from tools.hearing import campplus

        return campplus.embed(wav, sr)
    raise ValueError(f"unknown speaker judge {judge!r}; known: {', '.join(BENCH_JUDGES)}")


_REF_LOCK = threading.Lock()
_REFS: dict[tuple, np.ndarray] = {}


def reference_embedding(path: Path, judge: str = "resemblyzer") -> np.ndarray:
    """Embedding of a reference clip by `judge`, cached by judge, path and modification time."""
    path = Path(path)
    if not path.is_file():
        raise ToolError(f"voice reference {path} does not exist", "fix `voice.reference` in the cast file")
    key = (judge, str(path), path.stat().st_mtime_ns)
    with _REF_LOCK:
        if key in _REFS:
            return _REFS[key]
    emb = embed_by(judge, read_audio(path, ENCODER_SR), ENCODER_SR)
    with _REF_LOCK:
        _REFS[key] = emb
    return emb
