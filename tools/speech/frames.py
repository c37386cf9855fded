"""Frame selection for voice matching: every frame of a new line takes its envelope shape from the
reference frames that sound most like it (a k-nearest-neighbour mapping, as kNN-VC does with WavLM
features, here on WORLD envelopes).

The sound classes (`tools.speech.classes`) move piper's frames toward the reference by six mean
corrections: what they cannot give is the reference speaker's own detail per sound. Here the
reference clip's loud frames are kept as a codebook of envelope shapes (mel cepstra 1..N_CEP over the
bands the recording holds). At render time each frame of the line (already formant-warped and
class-corrected, so it lives near the reference's space) finds its K nearest codebook entries; the
frame's shape moves toward their mean by `mix`, and the move is smoothed over SMOOTH frames, since a
frame-to-frame jump between picked entries is heard as a warble.

Below about 2.5 kHz (the first two formants, most of what tells one vowel from another) a picked
frame of a neighbouring sound costs the words; above it (the third formant and up, where the length
and shape of a speaker's vocal tract shows most) it costs little. So frames move only above
SPLIT_HZ[0] (1 kHz), fully above SPLIT_HZ[1] (2.5 kHz), rising linearly between. On the wideband
human set (7 real speakers, two unseen lines each, tiny.en WER over 8 lines per voice; the
prototype's figures, bench/RESULTS.md "fourth pass"), by the d-vector, the judge the fit never
hears (its ceiling on the speakers' own half-clips: 0.777 / 86%):

| frame selection | own / closest other / identification | WER |
|---|---|---|
| none (the classes alone) | 0.620 / 0.569 / 64% | 0.079 |
| whole band, full | 0.672 / 0.513 / 93% | 0.182 |
| full above 2.5 kHz, none below 1 kHz | 0.687 / 0.556 / 93% | 0.085 |

Resemblyzer, which the fit's search listens through, liked the move below 1 kHz too; the unseen
judges did not, and the words paid: with a second strength for the low band, moved by the search,
WER was 0.087 against 0.079 on the wideband set and 0.116 against 0.101 on the espeak-ng set, and
the d-vector identified 71% of the wideband lines against 79%. The fit starts the mix at 1 and the
search (`tools.speech.search`) moves it in steps of 0.25 under the intelligibility floor; the
clearer-reading check lowers it with the rest of the envelope change.
"""
from __future__ import annotations

import numpy as np

from tools.speech.bands import N_BANDS
from tools.speech.classes import N_CEP, bands_to_bins, cepstra, usable_shapes

K = 4  # nearest reference frames averaged per frame (kNN-VC's k)
SMOOTH = 5  # frames (10 ms each) over which the per-frame move is averaged
CODEBOOK = 512  # reference frames kept at most (k-means centroids beyond that); 20 numbers each
SPLIT_HZ = (1000.0, 2500.0)  # no move below the first, the whole move above the second (module docstring)


def reference_codebook(ref_log_sp_db: np.ndarray, sr: int, n_use: int, size: int = CODEBOOK) -> list:
    """Mel cepstra (frames, N_CEP) of the reference's loud frames over its `n_use` usable bands, at most
    `size` of them (k-means centroids of them beyond that)."""
    shape, loud = usable_shapes(ref_log_sp_db, sr, n_use)
    c = cepstra(shape[loud])
    if len(c) > size:
        from scipy.cluster.vq import kmeans2

        c, _ = kmeans2(c, size, seed=0, minit="++")
    return np.asarray(c).round(3).tolist()


def band_moves(log_sp_db: np.ndarray, sr: int, codebook: list, n_use: int, k: int = K,
               smooth: int = SMOOTH) -> np.ndarray:
    """Per-frame move (frames, bands) in dB of each loud frame's usable-band shape to the mean of its `k`
    nearest codebook shapes, smoothed over `smooth` frames; above `n_use` the top usable value holds."""
    from scipy.fft import idct
    from scipy.ndimage import uniform_filter1d
    from scipy.spatial.distance import cdist

    book = np.asarray(codebook, float)
    shape, loud = usable_shapes(log_sp_db, sr, n_use)
    own = cepstra(shape)
    # cdist, not a matrix product: BLAS sums in an order that depends on its thread count, and a Ray
    # worker (one thread) must pick the same neighbours as a local run, to the bit.
    d2 = cdist(own, book, "sqeuclidean")
    near = np.argpartition(d2, min(k, len(book)) - 1, axis=1)[:, :k]
    move_cep = book[near].mean(axis=1) - own
    full = np.zeros((len(own), n_use))
    m = min(N_CEP, n_use - 1)
    full[:, 1 : m + 1] = move_cep[:, :m]
    move = idct(full, type=2, norm="ortho", axis=-1)  # back from cepstra 1..N_CEP to bands
    move[~loud] = 0.0  # the codebook holds loud frames only: pauses and breaths keep their own shape
    move = uniform_filter1d(move, smooth, axis=0, mode="nearest")
    if n_use < N_BANDS:
        move = np.concatenate([move, np.repeat(move[:, -1:], N_BANDS - n_use, axis=1)], axis=1)
    return move


def frame_curves(log_sp_db: np.ndarray, sr: int, codebook: list, n_use: int) -> np.ndarray:
    """`band_moves` interpolated to fft bins (frames, bins), in dB: none below SPLIT_HZ[0], all above
    SPLIT_HZ[1], rising linearly between them."""
    curves = bands_to_bins(band_moves(log_sp_db, sr, codebook, n_use), sr, log_sp_db.shape[1])
    f = np.linspace(0, sr / 2, log_sp_db.shape[1])
    ramp = np.clip((f - SPLIT_HZ[0]) / (SPLIT_HZ[1] - SPLIT_HZ[0]), 0.0, 1.0)
    return curves * ramp[None]
