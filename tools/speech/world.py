"""WORLD analysis and the voice-matching transform: profiles of a voice (F0, envelope shape per mel
band, aperiodicity, active speech, loudness), the `WorldTransform` that moves piper's voice, and
rendering speech through it with a parenthetical's style.

The transform maps F0 mean and range in the log domain, warps the envelope (formant scale), adds an
envelope correction per sound class (`tools.speech.classes`) and a breathiness change. How it is
fitted to a reference clip is `tools.speech.fitting`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np

from tools.base import ToolError
from tools.media.audio import load_audio, voiced_share
from tools.speech.bands import band_edges, bands

LOG = logging.getLogger(__name__)
ANALYSIS_VERSION = 15  # bump when the analysis or the fit changes: old cache entries are ignored
FRAME_MS = 5.0


MIN_REF_S, MAX_REF_S = 1.0, 30.0  # a reference clip's length, and its takes' joined (`joined_takes`)
TAKE_GAP_S = 0.4  # silence between two takes of one voice
TAKE_PEAK = 10 ** (-1 / 20)  # a quiet take is raised at most until its peak reaches -1 dBFS (`take_gains`)
TAKE_EDGE_S = 0.3  # a take's silence before its first sound and after its last is cut to this (`take_span`)
EDGE_FLOOR_DB = 45.0  # "silence": 10 ms frames more than this under the take's loudest
EDGE_SOUND_S = 0.05  # a "sound" at a take's edge lasts at least this: a tap on the phone or a click alone does not
# A clip with less of its sounding time voiced (`voiced_share`) is not taken for a voice: noise reads 0.00-0.05,
# the gruffest clean voice clip 0.30 and that voice under noise as loud as its speech 0.10 (twenty-fourth pass)
MIN_VOICED_SHARE = 0.1


def frame_db(x: np.ndarray, sr: int, hop_s: float = 0.01) -> np.ndarray:
    """Power of each whole hop_s frame, in dB."""
    hop = max(int(sr * hop_s), 1)
    n = len(x) // hop
    return 10 * np.log10(np.mean(np.asarray(x[: n * hop]).reshape(n, hop) ** 2, axis=1) + 1e-12)


def active_mask(x: np.ndarray, sr: int, hop_s: float = 0.01, floor_db: float = 35.0) -> np.ndarray:
    """Frames (hop_s) whose energy is within `floor_db` of the loudest: speech, not pauses."""
    e = frame_db(x, sr, hop_s)
    if len(e) == 0:
        return np.zeros(0, bool)
    return e > max(e.max() - floor_db, -70.0)


def check_reference(path) -> list[str]:
    """Problems with a reference voice clip: missing, undecodable, silent, shorter than 1 s or
    longer than 30 s, or without a voice's periodic sound (noise). Empty list when the clip is usable."""
    path = Path(path)
    if path.is_dir():
        return [f"{path}: reference voice is a folder, not an audio file"]
    if not path.is_file():
        return [f"{path}: reference voice file is missing"]
    try:
        x, sr = load_audio(path)
    except ToolError as exc:
        return [exc.message]
    problems = []
    dur = len(x) / sr if sr else 0.0
    if dur < MIN_REF_S:
        problems.append(f"{path}: reference voice is {dur:.2f} s long, shorter than {MIN_REF_S:.0f} s")
    elif dur > MAX_REF_S:
        problems.append(f"{path}: reference voice is {dur:.1f} s long, longer than {MAX_REF_S:.0f} s")
    if len(x) == 0 or float(np.max(np.abs(x))) < 1e-3:
        problems.append(f"{path}: reference voice is silent")
    elif (share := voiced_share(x, sr)) < MIN_VOICED_SHARE:
        problems.append(f"{path}: reference voice has no voiced sound ({share:.0%} of its sounding time is "
                        f"voiced, at least {MIN_VOICED_SHARE:.0%} for a voice): it sounds like noise, not speech")
    return problems


def speech_level_db(x: np.ndarray, sr: int, mask: Optional[np.ndarray] = None) -> float:
    """A clip's speech level: the mean power of its active frames (`mask`, else `active_mask`'s), in dB of
    full scale."""
    mask = active_mask(x, sr) if mask is None else mask
    active = x[: len(mask) * int(sr * 0.01)].reshape(len(mask), -1)[mask] if mask.any() else x[None]
    return float(10 * np.log10(np.mean(active**2) + 1e-12))


def take_gains(takes: list, sr: int) -> list[float]:
    """Gains that bring each take to the median of the takes' speech levels, so that one quiet take is not
    left out of the fit's loud-frame statistics (`active_mask` and the envelope keep frames within 35-40 dB
    of the loudest) nor stands for a quieter voice. A take is raised only as far as its peak stays under
    TAKE_PEAK; one take keeps its level."""
    levels = [speech_level_db(x, sr) for x in takes]
    target = float(np.median(levels))
    peaks = [float(np.max(np.abs(x))) + 1e-12 for x in takes]
    return [min(10 ** ((target - level) / 20), max(1.0, TAKE_PEAK / peak)) for level, peak in zip(levels, peaks)]


def _sounds(e: np.ndarray, top: float) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the runs of frames of `e` (10 ms, dB) within EDGE_FLOOR_DB of `top` that last EDGE_SOUND_S
    or more: [start, end) in frames."""
    on = (e > max(top - EDGE_FLOOR_DB, -70.0)).astype(np.int8)
    bounds = np.diff(np.concatenate([[0], on, [0]]))
    starts, ends = np.flatnonzero(bounds == 1), np.flatnonzero(bounds == -1)
    long = ends - starts >= round(EDGE_SOUND_S / 0.01)
    return starts[long], ends[long]


def take_span(x: np.ndarray, sr: int) -> slice:
    """The part of a take that is joined: from TAKE_EDGE_S before its first sound to TAKE_EDGE_S after its last,
    a sound being EDGE_SOUND_S or more of 10 ms frames each within EDGE_FLOOR_DB of the loudest frame of a sound.
    A phone's recording starts and stops around its words, often with a tap on the screen; that silence would
    count toward the 30 s and the advice's length. A take with no such silence keeps all of it."""
    e = frame_db(x, sr)
    starts, ends = _sounds(e, e.max()) if len(e) else ((), ())
    if len(starts):  # again from the loudest frame of a sound: a tap louder than the words would raise the floor
        starts, ends = _sounds(e, max(e[a:b].max() for a, b in zip(starts, ends)))
    if not len(starts):
        return slice(0, len(x))
    hop, edge = max(int(sr * 0.01), 1), int(TAKE_EDGE_S * sr)
    return slice(max(int(starts[0]) * hop - edge, 0), min(int(ends[-1]) * hop + edge, len(x)))


def joined_takes(paths: list) -> tuple[np.ndarray, int]:
    """(samples, rate) of a voice's takes (each a clip `check_reference` passed) joined into one: in order, at
    the highest of their rates, their edge silences cut (`take_span`), TAKE_GAP_S of silence between, each at
    one speech level (`take_gains`)."""
    from tools.media.audio import resample

    clips = [load_audio(Path(p)) for p in paths]
    sr = max(rate for _, rate in clips)
    takes = [y[take_span(y, sr)] for y in (resample(x, rate, sr) for x, rate in clips)]
    gap = np.zeros(int(TAKE_GAP_S * sr), np.float32)
    return np.concatenate([part for x, g in zip(takes, take_gains(takes, sr)) for part in (gap, x * g)][1:]), sr


def store_takes(joined: np.ndarray, sr: int, first_take: Path, write: bool = True) -> Path:
    """`joined_takes`'s clip written once into the user cache and named by a digest of its samples
    (`voice-takes/<digest>.wav`): the fits, keyed by the clip's digest, are found again the next time, and the
    writer's folder is never written. Its fits are shared beside `first_take`. Without `write` (`compose
    validate`) only the path is given: nothing is written."""
    import hashlib

    from tools.media.audio import write_wav
    from tools.media.files import voice_cache_file
    from tools.speech import shared_fits

    name = hashlib.sha256(joined.astype(np.float32).tobytes() + str(sr).encode()).hexdigest()[:24] + ".wav"
    path = voice_cache_file(name, "voice-takes", make=write)
    if write and not path.is_file():
        write_wav(path, joined, sr)
    shared_fits.set_home(path, Path(first_take).parent)  # `compose voices --share-fits` puts its fits there
    return path


# --------------------------------------------------------------------------------------- analysis


@dataclass
class VoiceProfile:
    """What the transform is fitted to; the same analysis serves reference and source."""

    sample_rate: int
    f0_log_mean: float
    f0_log_std: float
    voiced_shape: list  # mean frame-normalised log envelope of voiced frames, per mel band (dB)
    unvoiced_shape: list
    voiced_ap: float  # mean aperiodicity of voiced frames (0 periodic .. 1 noise)
    active_s: float
    loudness_db: float
    usable_bands: int  # bands below the clip's own Nyquist (a 16 kHz clip has nothing above 8 kHz)
    mean_log_sp: list = field(default_factory=list)  # voiced mean log envelope per fft bin, for warping
    voiced_ap_bands: list = field(default_factory=list)  # mean voiced aperiodicity per mel band


def world_analyse(x: np.ndarray, sr: int, f0_floor=55.0, f0_ceil=700.0):
    """WORLD harvest F0, cheaptrick envelope and d4c aperiodicity at FRAME_MS."""
    import pyworld as pw

    xd = np.ascontiguousarray(x, dtype=np.float64)
    f0, t = pw.harvest(xd, sr, f0_floor=f0_floor, f0_ceil=f0_ceil, frame_period=FRAME_MS)
    sp = pw.cheaptrick(xd, f0, t, sr)
    ap = pw.d4c(xd, f0, t, sr)
    return f0, sp, ap


# Piper's output is analysed with the same full harvest range as references. Narrowing it to the
# piper voice's own range (60-320 Hz; its F0 spans 62-260 Hz) saved about a fifth of harvest's time,
# but changed voicing on about a tenth of the frames and the espeak-ng identification fell from 8/8 to
# 5/8, so the saving is not taken. `dio` is not used either, not even on this fixed voice: on piper's
# slightly creaky voice it reported double F0 on a third of the voiced frames (harvest: none).
SYNTH_F0_RANGE = (55.0, 700.0)


def analyse_synthetic(x: np.ndarray, sr: int):
    """`world_analyse` for piper's own output (see SYNTH_F0_RANGE)."""
    return world_analyse(x, sr, *SYNTH_F0_RANGE)


def usable_band_count(sr: int, n_bins: int, native_sr: int) -> int:
    """Mel bands (of a `n_bins` envelope at rate `sr`) lying below 0.95 of a clip's own Nyquist."""
    edges_hz = band_edges(sr, 2 * (n_bins - 1)) * sr / (2 * (n_bins - 1))
    return int(np.sum(edges_hz[1:] <= 0.95 * 0.5 * native_sr))


def profile_of(x: np.ndarray, sr: int, native_sr: Optional[int] = None, analysis=None) -> VoiceProfile:
    """Analyse one utterance (float mono at `sr`, which is the working rate of the transform);
    `analysis` reuses a `world_analyse` result of the same audio."""
    f0, sp, ap = analysis if analysis is not None else world_analyse(x, sr)
    log_sp = 10 * np.log10(sp + 1e-16)
    frame_e = log_sp.mean(axis=1)
    loud = frame_e > frame_e.max() - 40.0  # envelope statistics only over audible frames
    voiced = (f0 > 0) & loud
    unvoiced = (f0 == 0) & loud
    if voiced.sum() < 10:
        raise ToolError("no voiced speech found in the clip", "use a clip of clear speech")
    norm = log_sp - frame_e[:, None]
    lf0 = np.log(f0[voiced])
    band = bands(norm, sr)
    mask = active_mask(x, sr)
    return VoiceProfile(
        sample_rate=sr,
        f0_log_mean=float(np.median(lf0)),
        f0_log_std=float(max(np.subtract(*np.percentile(lf0, [84, 16])) / 2, 0.02)),
        voiced_shape=band[voiced].mean(axis=0).tolist(),
        unvoiced_shape=(band[unvoiced].mean(axis=0) if unvoiced.sum() >= 5 else band[voiced].mean(axis=0)).tolist(),
        voiced_ap=float(ap[voiced].mean()),
        active_s=float(mask.sum() * 0.01),
        loudness_db=speech_level_db(x, sr, mask),
        usable_bands=usable_band_count(sr, sp.shape[1], native_sr or sr),
        mean_log_sp=norm[voiced].mean(axis=0).tolist(),
        voiced_ap_bands=bands(ap[voiced], sr).mean(axis=0).tolist(),
    )


# -------------------------------------------------------------------------------------- transform


@dataclass
class WorldTransform:
    """Parameters of the matching transform; `scaled(0)` is the identity (raw TTS)."""

    f0_shift: float = 0.0  # added to log F0 (natural log)
    f0_range: float = 1.0  # multiplies the log-F0 deviation from the utterance's mean
    warp: float = 1.0  # formant scale: the envelope at f moves to warp * f
    voiced_corr: list = field(default_factory=list)  # dB per mel band, voiced frames
    unvoiced_corr: list = field(default_factory=list)
    ap_shift: float = 0.0  # added to voiced aperiodicity (breathiness)
    ap_corr: list = field(default_factory=list)  # added to voiced aperiodicity per mel band
    class_centroids: list = field(default_factory=list)  # sound classes (tools.speech.classes)
    class_corr: list = field(default_factory=list)  # dB per class and mel band; replaces *_corr
    frames: list = field(default_factory=list)  # reference codebook of frame shapes (tools.speech.frames)
    frames_bands: int = 0  # the usable bands the codebook's shapes cover
    frames_mix: float = 0.0  # how far each frame moves to its nearest reference frames (0 none, 1 all)
    length_scale: float = 1.0  # piper's phoneme length scale (rate)
    gain_db: float = 0.0  # output loudness change

    def scaled(self, s: float) -> "WorldTransform":
        """Interpolate from the identity (s=0) to this transform (s=1), in each parameter's own domain."""
        return WorldTransform(
            f0_shift=self.f0_shift * s,
            f0_range=self.f0_range**s,
            warp=self.warp**s,
            voiced_corr=[c * s for c in self.voiced_corr],
            unvoiced_corr=[c * s for c in self.unvoiced_corr],
            ap_shift=self.ap_shift * s,
            ap_corr=[c * s for c in self.ap_corr],
            class_centroids=self.class_centroids,
            class_corr=[[c * s for c in row] for row in self.class_corr],
            frames=self.frames,
            frames_bands=self.frames_bands,
            frames_mix=self.frames_mix * s,
            length_scale=self.length_scale**s,
            gain_db=self.gain_db * s,
        )

    def envelope_scaled(self, w: float) -> "WorldTransform":
        """The transform with every envelope correction (long-term and per class) scaled by `w`."""
        return replace(
            self,
            voiced_corr=[c * w for c in self.voiced_corr],
            unvoiced_corr=[c * w for c in self.unvoiced_corr],
            class_corr=[[c * w for c in row] for row in self.class_corr],
        )

    def milder(self, w: float) -> "WorldTransform":
        """Every change of the envelope, the corrections, the frame selection and the formant warp, at strength `w`."""
        return replace(self.envelope_scaled(w), warp=self.warp**w, frames_mix=self.frames_mix * w)

    @property
    def is_identity(self) -> bool:
        return (
            abs(self.f0_shift) < 1e-6 and abs(self.f0_range - 1) < 1e-6 and abs(self.warp - 1) < 1e-6
            and not any(self.voiced_corr) and not any(self.unvoiced_corr) and abs(self.ap_shift) < 1e-6
            and not any(self.ap_corr) and not any(any(row) for row in self.class_corr)
            and not (self.frames and self.frames_mix > 1e-6)
        )


def identity_transform() -> WorldTransform:
    """Raw TTS: no change."""
    return WorldTransform()


def warp_bins(a: np.ndarray, warp: float) -> np.ndarray:
    """Resample the last axis so that content at bin k moves to bin warp * k."""
    n = a.shape[-1]
    src = np.clip(np.arange(n) / warp, 0, n - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    w = src - lo
    return a[..., lo] * (1 - w) + a[..., hi] * w


def _corr_curve(corr: list, sr: int, n_bins: int) -> np.ndarray:
    """Band corrections (dB) interpolated to fft bins; outside the band grid the edge value holds."""
    if not corr:
        return np.zeros(n_bins)
    edges = band_edges(sr, 2 * (n_bins - 1))
    centers = 0.5 * (edges[:-1] + edges[1:])
    return np.interp(np.arange(n_bins), centers, np.asarray(corr, float))


def apply_transform(x: np.ndarray, sr: int, tf: WorldTransform, style=None) -> np.ndarray:
    """Apply a matching transform and a parenthetical style (`tools.speech.prosody.Style`) with WORLD."""
    if tf.is_identity and (style is None or style.is_neutral):
        return (x * 10 ** (tf.gain_db / 20)).astype(np.float32)
    return render_transform(analyse_synthetic(x, sr), len(x), sr, tf, style)


def render_transform(analysis, n_samples: int, sr: int, tf: WorldTransform, style=None) -> np.ndarray:
    """WORLD resynthesis of an analysed utterance (`world_analyse`) under a transform and style."""
    import pyworld as pw

    f0, sp, ap = analysis
    voiced = f0 > 0
    lf0 = np.log(np.where(voiced, f0, 1.0))
    mean = lf0[voiced].mean() if voiced.any() else 0.0
    f0_range = tf.f0_range * (style.f0_range if style else 1.0)
    shift = tf.f0_shift + (style.f0_shift_semitones * np.log(2) / 12 if style else 0.0)
    new_lf0 = mean + shift + (lf0 - mean) * f0_range
    f0_out = np.where(voiced, np.exp(np.clip(new_lf0, np.log(40), np.log(1100))), 0.0)

    log_sp = np.log(sp + 1e-16)
    if abs(tf.warp - 1) > 1e-6:
        log_sp = warp_bins(log_sp, tf.warp)
        ap = warp_bins(ap, tf.warp)
    n_bins = sp.shape[1]
    to_nat = np.log(10) / 10  # dB (power) to natural log
    if tf.class_corr:
        from tools.speech.classes import class_curves

        log_sp = log_sp + class_curves(log_sp / to_nat, sr, tf.class_centroids, tf.class_corr) * to_nat
    else:
        vc = _corr_curve(tf.voiced_corr, sr, n_bins) * to_nat
        uc = _corr_curve(tf.unvoiced_corr, sr, n_bins) * to_nat
        log_sp = log_sp + np.where(voiced[:, None], vc[None], uc[None])
    if tf.frames and tf.frames_mix > 1e-6:
        from tools.speech.frames import frame_curves

        log_sp = log_sp + tf.frames_mix * frame_curves(log_sp / to_nat, sr, tf.frames, tf.frames_bands) * to_nat
    ap_shift = tf.ap_shift + (style.breathiness if style else 0.0)
    ap_curve = ap_shift + _corr_curve(tf.ap_corr, sr, n_bins)
    ap = np.where(voiced[:, None], np.clip(ap + ap_curve[None], 0.001, 0.999), ap)
    if style is not None and style.whisper:
        f0_out = np.zeros_like(f0_out)  # no voicing: WORLD fills the envelope with noise
        ap = np.full_like(ap, 0.999)
    y = pw.synthesize(f0_out, np.ascontiguousarray(np.exp(log_sp)), np.ascontiguousarray(ap), sr, FRAME_MS)
    y = y[:n_samples] if len(y) >= n_samples else np.pad(y, (0, n_samples - len(y)))
    gain = tf.gain_db + (style.gain_db if style else 0.0)
    y = y * 10 ** (gain / 20)
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak > 0.98:  # keep shouted or loud references from clipping
        y = y * (0.98 / peak)
    return y.astype(np.float32)
