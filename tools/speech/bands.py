"""The mel band grid shared by the WORLD analysis (voice profiles, envelope corrections) and the
sound classes: log spectra are compared band by band, not bin by bin."""
from __future__ import annotations

import numpy as np

N_BANDS = 48
def band_edges(sr: int, n_fft: int) -> np.ndarray:
    mel = np.linspace(2595 * np.log10(1 + 80 / 700), 2595 * np.log10(1 + 0.5 * sr / 700), N_BANDS + 1)
    hz = 700 * (10 ** (mel / 2595) - 1)
    return np.clip(np.round(hz / sr * n_fft).astype(int), 0, n_fft // 2)


def bands(log_sp: np.ndarray, sr: int) -> np.ndarray:
    """Average a (frames, bins) log spectrum into mel bands."""
    edges = band_edges(sr, 2 * (log_sp.shape[-1] - 1))
    return np.stack([log_sp[..., a : max(b, a + 1)].mean(axis=-1) for a, b in zip(edges[:-1], edges[1:])], -1)
