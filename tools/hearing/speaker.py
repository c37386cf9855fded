"""The speaker encoders shared by voice matching, the speaker evaluator and the benchmarks: an
embedding per clip, cosine similarity, and cached reference embeddings.

Two judges, by name (JUDGES): `resemblyzer` (below), the one voice fitting listens through, and
`dvector` (`tools.hearing.dvector`), an independent encoder the fit search never hears; the speaker
evaluator reports both and a line must pass both. A third, `campplus` (`tools.hearing.campplus`), is
heard by the benchmarks (BENCH_JUDGES) and, beside resemblyzer, by a voice's base choice
(`tools.speech.fitting.CHOICE_JUDGES`); never by the search or acceptance.

Every comparison with a reference clip is made through that clip's channel (`Listener`,
`channel_rate`): a recording that carries less than the encoders' band (a telephone clip at 8 kHz,
or one upsampled from it) is compared with speech passed through the same band, like with like. The
encoders hear a missing upper band as much as a different voice: on the real telephone set, the
d-vector heard the same synthesized lines at 0.626 of own similarity as they are and 0.757 through
the reference's band, against 0.770 for the speakers' own second halves (bench/RESULTS.md, ninth
pass). A clip that fills the band is compared as it is.

Resemblyzer's pretrained GE2E encoder ships inside the `resemblyzer` package (no download). Install
it with `pip install --no-deps resemblyzer` plus `webrtcvad-wheels`, so pip never tries to compile
the original `webrtcvad`. The encoder is loaded once per process.
"""
from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from tools.base import ToolError
from tools.media.audio import read_audio
from tools.memo import memoised

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
    x = cover_windows(x)
    enc = _encoder()
    with _LOCK:  # torch modules are not re-entrant across threads here
        e = enc.embed_utterance(x)
    return (e / (np.linalg.norm(e) + 1e-9)).astype(np.float32)


def cover_windows(x: np.ndarray) -> np.ndarray:
    """16 kHz speech repeated cyclically up to the end of the last 1.6 s window resemblyzer cuts from
    it, where the encoder itself would pad zeros. Its LSTM embeds a window by its state at the last
    frame, so a window that ends in padded silence (every line under 1.6 s, and the last window of some
    longer ones) is embedded after a stretch of silence, not of the speaker. On 1 s pieces of the real
    wideband speakers' recordings, against their own other halves: own similarity 0.697 -> 0.742, the
    closest other 0.612 -> 0.595, identification 23/32 -> 30/32; at 2 s and more within 0.003 of as
    before (bench/RESULTS.md, ninth pass)."""
    from resemblyzer import VoiceEncoder

    stop = VoiceEncoder.compute_partial_slices(len(x), 1.3, 0.75)[0][-1].stop  # embed_utterance's defaults
    return np.resize(x, stop) if stop > len(x) else x


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (1 = same direction)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


# What the fitting judge is, for the cache keys of what it chose (fits, base choices, the packs'
# embeddings): change it when `embed` hears differently.
FITTING_JUDGE = "resemblyzer 0.1.4, windows covered"
JUDGES = ("resemblyzer", "dvector")
# The benchmarks also hear CAM++ (`tools.hearing.campplus`), the strongest of the three on real
# recordings; a base choice hears it too (module docstring), acceptance never.
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


_REFS: dict[tuple, np.ndarray] = {}  # `tools.memo.memoised`'s: two shots' judges asking at once embed a clip once


def reference_embedding(path: Path, judge: str = "resemblyzer") -> np.ndarray:
    """Embedding of a reference clip by `judge`, cached by judge, path and modification time."""
    path = Path(path)
    if not path.is_file():
        raise ToolError(f"voice reference {path} does not exist", "fix `voice.reference` in the cast file")
    key = (judge, str(path), path.stat().st_mtime_ns)
    return memoised(_REFS, key, lambda: embed_by(judge, read_audio(path, ENCODER_SR), ENCODER_SR))


FULL_BAND_DROP_DB = 60.0  # a clip's bandwidth: its highest frequency within this of its speech-band peak
LIMITED_BELOW_HZ = 6000.0  # a bandwidth under this (of the encoders' 8 kHz) marks a band-limited recording
_CHANNELS: dict[tuple, int | None] = {}  # `tools.memo.memoised`'s


def channel_rate(path: Path) -> int | None:
    """The sample rate of the channel a reference clip was recorded through, when it carries less than
    the encoders' band: its own rate when stored below ENCODER_SR, else twice its bandwidth (rounded up
    to a kHz) when that lies under LIMITED_BELOW_HZ (a telephone clip stored at 16 kHz or more); None
    for a clip that fills the band. Cached by path and modification time."""
    from scipy.signal import welch

    from tools.media.audio import load_audio

    path = Path(path)

    def measure() -> int | None:
        x, sr = load_audio(path)
        rate = sr if sr < ENCODER_SR else None
        if rate is None and len(x) >= 1024:
            f, p = welch(x, sr, nperseg=1024)
            db = 10 * np.log10(p + 1e-20)
            peak = db[(f > 200) & (f < 3000)].max()
            width = float(f[np.nonzero(db > peak - FULL_BAND_DROP_DB)[0][-1]])
            if width < LIMITED_BELOW_HZ:
                rate = int(np.ceil(2 * width / 1000) * 1000)
        return rate

    return memoised(_CHANNELS, (str(path), path.stat().st_mtime_ns), measure)


def through_channel(wav: np.ndarray, sr: int, rate: int | None) -> np.ndarray:
    """`wav` as a channel at `rate` carries it: resampled down to `rate` and back (None: unchanged)."""
    from tools.media.audio import resample

    if rate is None or rate >= sr:
        return np.asarray(wav, np.float32)
    return resample(resample(np.asarray(wav, np.float32), sr, rate), rate, sr)


class Listener:
    """One judge comparing speech with a fixed list of reference clips, each comparison heard through
    that clip's channel (`channel_rate`; the module docstring). Embeds a candidate once per distinct
    channel among the references."""

    def __init__(self, references: Sequence[Path], judge: str = "resemblyzer",
                 embeddings: Sequence[np.ndarray] | None = None):
        """`embeddings`: the references' own, when the caller made them otherwise (default: cached
        `reference_embedding`s)."""
        self.judge = judge
        self.references = [Path(r) for r in references]
        self.rates = [channel_rate(r) for r in self.references]
        self.embeddings = list(embeddings) if embeddings is not None else [reference_embedding(r, judge)
                                                                           for r in self.references]

    def heard(self, wav: np.ndarray, sr: int) -> dict[int | None, np.ndarray]:
        """Channel rate -> the judge's embedding of `wav` through that channel, for each of the references'."""
        return {rate: embed_by(self.judge, through_channel(wav, sr, rate), sr) for rate in dict.fromkeys(self.rates)}

    def similarities(self, wav: np.ndarray, sr: int) -> list[float]:
        """Cosine of `wav` to each reference, in order, each through the reference's channel."""
        heard = self.heard(wav, sr)
        return [similarity(heard[rate], e) for rate, e in zip(self.rates, self.embeddings)]
