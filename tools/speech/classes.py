"""Envelope mapping by sound class for voice matching (a small codebook mapping).

One long-term correction treats every sound alike, but voices differ per sound: a reference's vowels
may sit higher than piper's while its fricatives do not. At fit time piper speaks the reference
transcript, so both say the same words; dynamic time warping on mel cepstra pairs each piper frame
with the reference frame saying the same sound. Piper's frames are clustered (k-means on their mel
cepstra, a data-driven stand-in for phone classes such as open vowels, nasals and fricatives), and each
class keeps the mean envelope difference of its pairs. At render time every frame of a new line is
softly assigned to the classes and gets the weighted mix of their corrections, so the mapping follows
the sound being spoken rather than one average.
"""
from __future__ import annotations

import numpy as np

from tools.speech.bands import band_edges, bands

N_CEP = 20  # mel cepstra 1..20: envelope shape without loudness
N_CLASSES = 6  # a 5 s reference has ~600 loud frames: about 100 per class
TAU = 3.0  # soft-assignment width in cepstral distance units; smaller makes class edges audible
LIMIT_DB = 15.0


def cepstra(band_db: np.ndarray) -> np.ndarray:
    """Mel cepstra 1..N_CEP of per-frame band envelopes (frames, bands) in dB."""
    from scipy.fft import dct

    return dct(band_db, type=2, norm="ortho", axis=-1)[..., 1 : N_CEP + 1]


def frame_bands(log_sp_db: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame-normalised mel-band envelopes (dB) and the mask of audible frames."""

    e = log_sp_db.mean(axis=1)
    loud = e > e.max() - 40.0
    return bands(log_sp_db - e[:, None], sr), loud


def dtw_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a minimum-cost monotonic alignment of two feature sequences (frames, dims): the path
    through acc[i, j] = cost[i, j] + min(acc[i-1, j-1], acc[i-1, j], acc[i, j-1]) (Euclidean cost), a tie
    taking the diagonal step, then the one from above.

    The table is filled one anti-diagonal (i + j constant) at a time: every cell of one depends only on
    the two before it, so each is a handful of array operations (n + m of them, not a Python step per
    cell), and each cell's cost is computed with its diagonal. What is kept is the step each cell came
    from, one byte a cell, where the whole cost matrix of a 25 s reference against its reading held
    3.6 GB (bench/RESULTS.md, eighteenth pass)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n, m = len(a), len(b)
    br = b[::-1]  # along a diagonal i rises as j falls: b read backwards is a slice
    came = np.zeros((n + 1, m + 1), np.uint8)  # 0 diagonal, 1 from above (i - 1), 2 from the left (j - 1)
    before, last = np.full(n + 1, np.inf), np.full(n + 1, np.inf)  # acc along diagonals d - 2, d - 1 by i
    before[0] = 0.0  # acc[0, 0]; the rest of row 0 and column 0 stay infinite
    for d in range(2, n + m + 1):
        lo, hi = max(1, d - m), min(n, d - 1)
        cost = np.sqrt(((a[lo - 1:hi] - br[m - d + lo:m - d + hi + 1]) ** 2).sum(-1))
        diag, up, left = before[lo - 1:hi], last[lo - 1:hi], last[lo:hi + 1]
        side, rows = np.minimum(up, left), np.arange(lo, hi + 1)
        best = np.minimum(diag, side)
        came[rows, d - rows] = np.where(diag <= side, 0, np.where(up <= left, 1, 2))
        now = np.full(n + 1, np.inf)
        now[lo:hi + 1] = best + cost
        before, last = last, now
    i, j, pairs = n, m, []
    while i > 0 and j > 0:
        pairs.append((i - 1, j - 1))
        step = came[i, j]
        i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
    p = np.array(pairs[::-1])
    return p[:, 0], p[:, 1]


def fit_classes(src_db: np.ndarray, ref_db: np.ndarray, sr: int, k: int = N_CLASSES,
                usable_bands: int | None = None) -> tuple[list, list]:
    """Class centroids (k, N_CEP) and envelope corrections (k, bands, dB) from parallel utterances:
    `src_db` piper's (already formant-warped) log envelope, `ref_db` the reference's, both in dB.

    `usable_bands`: how many bands lie below the reference's own Nyquist (`VoiceProfile.usable_bands`).
    Above it a telephone or 16 kHz clip holds nothing, and comparing there would turn the recording's
    missing band into a cut of LIMIT_DB on every sound: speech as muffled as a phone line (the real
    human set's WER rose from 0.06 to 0.29). So pairing and corrections use only the usable bands,
    each frame's shape is taken relative to its mean over them, and each class's correction holds
    its top usable value above them, as the long-term corrections do."""
    from scipy.cluster.vq import kmeans2

    sb, sl = frame_bands(src_db, sr)
    n_use = sb.shape[1] if usable_bands is None else int(np.clip(usable_bands, 4, sb.shape[1]))
    if n_use < sb.shape[1]:
        (sb_use, sl), (rb_use, rl) = (usable_shapes(d, sr, n_use) for d in (src_db, ref_db))
    else:
        sb_use, (rb_use, rl) = sb, frame_bands(ref_db, sr)
    si, ri = np.where(sl)[0], np.where(rl)[0]
    fs = cepstra(sb)  # the classes live in piper's full-band space: render time sees the same
    a, b = dtw_pairs(cepstra(sb_use)[si], cepstra(rb_use)[ri])
    a, b = si[a], ri[b]
    diff = rb_use[b] - sb_use[a]
    if n_use < sb.shape[1]:
        diff = np.concatenate([diff, np.repeat(diff[:, -1:], sb.shape[1] - n_use, axis=1)], axis=1)
    cent, lab = kmeans2(fs[a], k, seed=0, minit="++")
    overall = diff.mean(axis=0)
    corr = [diff[lab == c].mean(axis=0) if np.sum(lab == c) >= 5 else overall for c in range(k)]
    corr = np.clip(np.asarray(corr), -LIMIT_DB, LIMIT_DB)
    return cent.round(4).tolist(), corr.round(3).tolist()


def usable_shapes(log_sp_db: np.ndarray, sr: int, n_use: int) -> tuple[np.ndarray, np.ndarray]:
    """`frame_bands` over the first `n_use` bands only: shapes relative to their own mean, and loud frames."""
    b = bands(log_sp_db, sr)[:, :n_use]
    e = b.mean(axis=1)
    return b - e[:, None], e > e.max() - 40.0


def class_curves(log_sp_db: np.ndarray, sr: int, centroids: list, corr: list) -> np.ndarray:
    """Per-frame envelope correction (frames, fft bins) in dB for a (warped) log envelope in dB."""

    bands, _ = frame_bands(log_sp_db, sr)
    f = cepstra(bands)
    cent = np.asarray(centroids)
    d2 = ((f[:, None, :] - cent[None]) ** 2).sum(-1)
    w = np.exp(-(d2 - d2.min(axis=1, keepdims=True)) / (2 * TAU**2))
    w /= w.sum(axis=1, keepdims=True)
    return bands_to_bins(w @ np.asarray(corr), sr, log_sp_db.shape[1])


def bands_to_bins(per_band: np.ndarray, sr: int, n_bins: int) -> np.ndarray:
    """Per-frame band values (frames, bands) linearly interpolated to fft bins (frames, n_bins)."""
    edges = band_edges(sr, 2 * (n_bins - 1))
    centers = 0.5 * (edges[:-1] + edges[1:])
    lo = np.clip(np.searchsorted(centers, np.arange(n_bins)) - 1, 0, len(centers) - 2)
    t = np.clip((np.arange(n_bins) - centers[lo]) / np.maximum(centers[lo + 1] - centers[lo], 1e-9), 0, 1)
    return per_band[:, lo] * (1 - t) + per_band[:, lo + 1] * t
