"""`cosyvoice` speech backend: CosyVoice2/3 zero-shot speech from a user-provided checkout and model.

Config: `render.cosyvoice.repo` (a clone of FunAudioLLM/CosyVoice) and `render.cosyvoice.model_dir`
(for example `pretrained_models/CosyVoice2-0.5B`). Each line is spoken with
`inference_zero_shot(text, prompt_text=<reference transcript>, prompt_wav=...)`, or with
`inference_instruct2` when the line has a parenthetical. CosyVoice changed `prompt_wav` from a 16 kHz
tensor (`prompt_speech_16k`) to a file path on 2025-12-08; the parameter name tells which one the
checkout wants. Output is resampled to the project rate. CosyVoice gives no alignments, so word
timings are spread over the voiced span by word length and phonemes are left empty.
"""
from __future__ import annotations

import hashlib
import inspect
import sys
import threading
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from orchestrator.schema.cast import CharacterSpec
from tools.base import SpeechKnobs, SpeechResult, Timing, ToolError
from tools.media.audio import resample, write_wav
from tools.speech import prosody, text_norm

PROMPT_SR = 16000
COSYVOICE3_PROMPT_PREFIX = "You are a helpful assistant.<|endofprompt|>"
_FIX = "clone https://github.com/FunAudioLLM/CosyVoice, download a CosyVoice2/3 model, and set " \
       "render.cosyvoice.repo and render.cosyvoice.model_dir (or use --speech piper)"


def import_cosyvoice(repo: Path):
    """The import boundary: the `cosyvoice.cli.cosyvoice` module of the checkout at `repo`."""
    for p in (repo / "third_party" / "Matcha-TTS", repo):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))
    import importlib

    try:
        return importlib.import_module("cosyvoice.cli.cosyvoice")
    except Exception as exc:  # a broken checkout fails in many ways (missing deps, syntax)
        raise ToolError(f"cannot import CosyVoice from {repo}: {exc}",
                        "install the checkout's requirements.txt into this environment") from exc


def _load_model(module, model_dir: Path):
    """Prefer AutoModel (newer checkouts), else CosyVoice3 or CosyVoice2 by the model's name."""
    if hasattr(module, "AutoModel"):
        return module.AutoModel(model_dir=str(model_dir))
    if "3" in model_dir.name and hasattr(module, "CosyVoice3"):
        return module.CosyVoice3(str(model_dir))
    if hasattr(module, "CosyVoice2"):
        return module.CosyVoice2(str(model_dir))
    raise ToolError("the CosyVoice checkout has no CosyVoice2/3 class", _FIX)


def prompt_takes_path(fn) -> bool:
    """True for the file-path API (`prompt_wav`), False for the 16 kHz tensor API
    (`prompt_speech_16k`)."""
    params = inspect.signature(fn).parameters
    if "prompt_wav" in params:
        return True
    if "prompt_speech_16k" in params:
        return False
    raise ToolError(f"unknown CosyVoice prompt API: {list(params)}", "use a CosyVoice2/3 checkout")


def spread_words(words: list[str], audio: np.ndarray, sr: int) -> list[Timing]:
    """Word spans spread by length over the part of `audio` louder than 40 dB below its peak."""
    if not words or len(audio) == 0:
        return []
    hop = max(sr // 100, 1)
    n = len(audio) // hop
    e = 10 * np.log10(np.mean(audio[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12) if n else np.zeros(0)
    active = np.flatnonzero(e > e.max() - 40) if n else np.array([0])
    start, end = active[0] * hop / sr, (active[-1] + 1) * hop / sr
    w = np.array([max(len(x), 1) for x in words], float)
    edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(w) / w.sum()])
    return [Timing(x, round(float(a), 4), round(float(b), 4)) for x, a, b in zip(words, edges[:-1], edges[1:])]


class CosyVoiceSynthesizer:
    """Zero-shot CosyVoice2/3 speech in each character's reference voice."""

    name = "cosyvoice"
    version = "1"
    take_noise = 0.0  # CosyVoice samples every take: a new seed alone makes a new one

    def __init__(self, repo: Optional[Path], model_dir: Optional[Path]):
        if repo is None or not (Path(repo) / "cosyvoice").is_dir():
            raise ToolError(f"CosyVoice checkout not found at render.cosyvoice.repo={repo}", _FIX)
        if model_dir is None or not Path(model_dir).is_dir() or not any(Path(model_dir).glob("*.yaml")):
            raise ToolError(f"CosyVoice model not found at render.cosyvoice.model_dir={model_dir} "
                            "(a folder with cosyvoice2.yaml or cosyvoice3.yaml)", _FIX)
        self.repo, self.model_dir = Path(repo), Path(model_dir)
        self._model = None
        self._lock = threading.Lock()
        self._prompts: dict[str, object] = {}  # 16 kHz prompt tensors by reference digest

    def _get_model(self):
        with self._lock:
            if self._model is None:
                self._model = _load_model(import_cosyvoice(self.repo), self.model_dir)
            return self._model

    def _prompt(self, reference: Path, as_path: bool):
        """The prompt in the form the checkout wants; tensors are cached by the wav's digest."""
        from tools.media.audio import load_audio
        from tools.speech.world import check_reference

        problems = check_reference(reference)
        if problems:
            raise ToolError("; ".join(problems), "give a 1-30 s clip of clear speech as voice.reference")
        if as_path:
            return str(reference)
        key = hashlib.sha256(Path(reference).read_bytes()).hexdigest()
        if key not in self._prompts:
            import torch

            x, sr = load_audio(reference)
            self._prompts[key] = torch.from_numpy(resample(x, sr, PROMPT_SR)).unsqueeze(0)
        return self._prompts[key]

    def synthesize(
        self,
        text: str,
        character: CharacterSpec,
        knobs: SpeechKnobs,
        out_path: Path,
        parenthetical: Optional[str] = None,
        sample_rate: int = 24000,
        others: Sequence[Path] = (),
    ) -> SpeechResult:
        """Speak one line with CosyVoice, prompted by the character's reference clip and transcript
        (`others` unused: a zero-shot prompt has no fit to keep away from them)."""
        sentences = text_norm.prepare_line(text, where=f"line for {character.id}")
        spoken = " ".join(sentences)
        model = self._get_model()
        style = prosody.from_parenthetical(parenthetical or knobs.emotion)
        use_instruct = style.instruction is not None and hasattr(model, "inference_instruct2")
        fn = model.inference_instruct2 if use_instruct else model.inference_zero_shot
        as_path = prompt_takes_path(fn)
        prompt = self._prompt(Path(character.voice.reference), as_path)
        key = "prompt_wav" if as_path else "prompt_speech_16k"
        try:
            import torch

            torch.manual_seed(int(knobs.seed))
        except ImportError:
            pass
        if use_instruct:
            chunks = fn(spoken, style.instruction, **{key: prompt}, stream=False, speed=float(knobs.rate))
        else:
            prompt_text = character.voice.transcript
            if "3" in type(model).__name__ and not prompt_text.startswith(COSYVOICE3_PROMPT_PREFIX):
                prompt_text = COSYVOICE3_PROMPT_PREFIX + prompt_text
            chunks = fn(spoken, prompt_text, **{key: prompt}, stream=False, speed=float(knobs.rate))
        pieces = [np.asarray(c["tts_speech"].detach().cpu().numpy() if hasattr(c["tts_speech"], "detach")
                             else c["tts_speech"], np.float32).reshape(-1) for c in chunks]
        if not pieces or sum(len(p) for p in pieces) == 0:
            raise ToolError(f"CosyVoice returned no audio for {character.id}: {text!r}",
                            "check the model directory and the reference transcript")
        audio = resample(np.concatenate(pieces), int(model.sample_rate), sample_rate)
        write_wav(out_path, audio, sample_rate)
        return SpeechResult(
            wav_path=Path(out_path),
            duration=len(audio) / sample_rate,
            sample_rate=sample_rate,
            phonemes=[],
            words=spread_words(spoken.split(), audio, sample_rate),
        )


def create(repo: Optional[Path] = None, model_dir: Optional[Path] = None) -> CosyVoiceSynthesizer:
    """Registry factory (`render.cosyvoice`): checks the checkout and model folder now, loads the model at first use."""
    return CosyVoiceSynthesizer(repo, model_dir)
