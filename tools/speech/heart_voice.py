"""heart: the American English woman's voice of `hibari-tts` (Apache-2.0; a 7.9 MB int8 ONNX model
distilled from Kokoro-82M's `af_heart`, bundled inside the wheel), the second base voice the piper
backend fits to references (`tools.speech.fitting`, beside piper's joe).

The package's own parts do the work where they can: its grapheme-to-phoneme front end
(lexicons and a small ONNX model for unknown words, Kokoro's phoneme alphabet) and its signal
processing (`hibari.dsp.synth`, which turns the network's frame features into a waveform). We
build the ONNX session ourselves for one reason: timings. The exported graph returns only frame
features, but its internal tensor `/Clip_output_0` holds the predicted duration of every token (600
samples at 24 kHz each; they add up to the audio's length exactly, as Kokoro's do), so it is added as
an output. Each token's span, moved TIMING_LEAD_S earlier, is a phoneme timing for the mouths.

Only the bundled voice is used, never hibari's download of its other voices: `voice_path(...,
download_missing=False)`, and the model's digest is checked when it is loaded.

Takes: the network has no noise input of its own, only the aperiodic part drawn in `dsp.synth`, so a
seed alone would give a retry the same reading again. A fresh take (`noise` > 0) draws that part from
the take's seed, moves the speaking rate by a seeded factor (log-normal, TAKE_RATE_SPREAD x noise) and
the intonation by a seeded smooth contour on the network's own F0 track (log-F0, TAKE_F0_SPREAD x noise,
correlated over about TAKE_F0_SMOOTH_S), before the signal stage turns it into sound.
"""
from __future__ import annotations

import threading

import numpy as np

from tools.base import ToolError
from tools.media.files import digest_file
from tools.speech import kokoro_voice
from tools.speech.piper_voice import RawSpeech

SR = 24000
FRAME = 600  # samples per duration frame
DURATIONS = "/Clip_output_0"
MODEL_SHA256 = "5f70741d4e900f4e85d0037498736cc1b3e1b9a63a13546a5da1e63abf4fccd8"  # hibari-tts 0.2.1, heart
TIMING_LEAD_S = 0.04  # measured against the audio's energy as Kokoro's was (bench/RESULTS.md, seventh pass)
TAKE_RATE_SPREAD = 0.08
TAKE_F0_SPREAD = 0.15  # at the retry's noise 0.3: 0.045 in log-F0, about 0.8 semitone
TAKE_F0_SMOOTH_S = 0.3
FEATURE_HOP = 300  # samples per frame of the network's features (two per duration frame)
_LOCK = threading.Lock()
_STATE: dict = {}


def _load() -> dict:
    """Session (with the duration output added), vocabulary and front end, once per process."""
    with _LOCK:
        if "session" not in _STATE:
            try:
                import hibari
                import onnx
                import onnxruntime as ort
                from hibari.voices import voice_path
            except ImportError as exc:
                raise ToolError(f"the heart voice needs the hibari-tts package ({exc})", "run make (it installs "
                                "requirements.lock)") from exc
            path = voice_path("heart", download_missing=False)
            if digest_file(path) != MODEL_SHA256:
                raise ToolError(f"{path} is not the heart model of hibari-tts 0.2.1 (digest differs)",
                                "reinstall it: pip install --force-reinstall hibari-tts==0.2.1")
            model = onnx.load(path)
            model.graph.output.append(onnx.helper.make_tensor_value_info(DURATIONS, onnx.TensorProto.FLOAT, None))
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1  # hibari's own setting: the model runs about 100x realtime on a core
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            _STATE["session"] = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
            _STATE["front"] = hibari.Hibari("heart", model=path)  # its front end and vocabulary
        return _STATE


def phonemize(sentence: str) -> list[str]:
    """hibari's phoneme strings (Kokoro's alphabet) of one English sentence, split where it is long."""
    front = _load()["front"]
    with _LOCK:  # the front end's lazy loading is not thread-safe
        return front.phonemize(sentence)


def take_contour(n_frames: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    """A seeded smooth log-F0 contour of `n_frames` feature frames with standard deviation `spread`."""
    if n_frames == 0 or spread <= 0:
        return np.zeros(n_frames)
    width = TAKE_F0_SMOOTH_S * SR / FEATURE_HOP
    k = np.exp(-0.5 * (np.arange(-3 * width, 3 * width + 1) / width) ** 2)
    c = np.convolve(rng.standard_normal(n_frames + len(k)), k / np.sqrt(np.sum(k ** 2)), mode="same")
    c = c[len(k) // 2: len(k) // 2 + n_frames]
    return spread * (c - c.mean()) / max(float(c.std()), 1e-9) if n_frames > 1 else np.zeros(n_frames)


def infer(phonemes: str, speed: float = 1.0, rng: np.random.Generator | None = None, f0_spread: float = 0.0
          ) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """(audio at 24 kHz, [(symbol, start sample, end sample)]) of one phoneme string; `f0_spread` > 0
    moves the intonation by a smooth contour drawn from `rng` (a fresh take)."""
    from hibari import dsp

    st = _load()
    symbols = [c for c in phonemes if c in st["front"].vocab]
    if not symbols:
        return np.zeros(0, np.float32), []
    ids = np.array([[0, *(st["front"].vocab[c] for c in symbols), 0]], np.int64)
    *feats, frames = st["session"].run(None, {"ids": ids, "speed": np.array([speed], np.float32)})
    rng = rng if rng is not None else np.random.default_rng(0)
    feats = [f[0] for f in feats]
    if f0_spread > 0:  # the last feature is the F0 track, one value per frame (0 where unvoiced)
        f0 = feats[-1]
        feats[-1] = (f0 * np.exp(take_contour(len(f0), f0_spread, rng))).astype(f0.dtype)
    audio = dsp.synth(*feats, rng)
    ends = np.cumsum(np.asarray(frames, np.int64).reshape(-1)) * FRAME
    starts = np.concatenate([[0], ends[:-1]])
    return np.asarray(audio, np.float32), [(c, int(a), int(b)) for c, a, b in zip(symbols, starts[1:-1], ends[1:-1])]


def raw_synthesize(sentences: list[str], length_scale: float = 1.0, noise: float = 0.0, seed: int = 0) -> RawSpeech:
    """Speak `sentences` in heart's voice, joined by short pauses; noise=0 is deterministic."""
    rng = np.random.default_rng(int(seed) if noise > 0 else 0)
    speed = 1.0 / max(length_scale, 0.1)
    if noise > 0:
        speed *= float(np.exp(TAKE_RATE_SPREAD * noise * rng.standard_normal()))
    return kokoro_voice.join_chunks([c for s in sentences for c in phonemize(s)],
                                    lambda chunk: infer(chunk, speed, rng, TAKE_F0_SPREAD * noise), TIMING_LEAD_S, SR)
