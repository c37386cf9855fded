"""A line in a Kokoro voice the kokoro backend chose (`tools.speech.bases`): the style of the choice (a pack,
perhaps moved by the style search), the pitch match at the knobs' `matching_strength`, the parenthetical's
style, the clearer-reading check (`tools.speech.clearer`). Both backends speak `voice.base: kokoro` through
`speak_own`, so a cast that pins it hears the same voice under either.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

import numpy as np

from orchestrator.schema.cast import CharacterSpec
from tools.base import SpeechKnobs, SpeechResult
from tools.media.audio import resample, write_wav
from tools.media.packaged import OWN_VOICE
from tools.speech import bases, kokoro_voice, prosody, text_norm, world
from tools.speech.clearer import clearer_reading
from tools.speech.piper_voice import words_from_phonemes

LOG = logging.getLogger(__name__)
VERSION = "4"  # the lines spoken here (the kokoro backend's version, and in piper's key for `voice.base: kokoro`)


def speak_own(clearer_readings: bool, line_tolerance: float, text: str, character: CharacterSpec, knobs: SpeechKnobs,
              out_path: Path, parenthetical: Optional[str], sample_rate: int) -> SpeechResult:
    """One line in this backend's own voice for the character's clip (`bases.own_voice`), as `voice.base:
    kokoro` pins it under either backend."""
    choice = bases.own_voice(character.voice.reference, character.voice.transcript)
    return speak_choice(choice, clearer_readings, line_tolerance, text, character, knobs, out_path, parenthetical,
                        sample_rate)


def speak_choice(choice: bases.BaseChoice, clearer_readings: bool, line_tolerance: float, text: str,
                 character: CharacterSpec, knobs: SpeechKnobs, out_path: Path, parenthetical: Optional[str],
                 sample_rate: int) -> SpeechResult:
    """One line in a Kokoro style of this backend's choice: the pitch match at `matching_strength`, the
    parenthetical's style, the clearer-reading check. Its notes name it as a cast pins it (`kokoro`) and say
    which voice that is (`voice`: the pack, searched, pitch)."""
    t0 = time.perf_counter()
    sentences = text_norm.prepare_line(text, where=f"line for {character.id}")
    style = prosody.from_parenthetical(parenthetical or knobs.emotion)
    transform = choice.transform(float(np.clip(knobs.matching_strength, 0.0, 1.0)))
    length_scale = style.length_scale / max(knobs.rate, 0.1)
    raw = kokoro_voice.raw_synthesize(sentences, choice.style(), length_scale, knobs.noise, knobs.seed)
    sr = raw.sample_rate
    notes = {"base": OWN_VOICE, "voice": choice.label(), **({"pinned": True} if character.voice.base else {})}
    if transform.is_identity and style.is_neutral:
        audio = raw.audio
    else:
        analysis = world.analyse_synthetic(raw.audio, sr)
        audio = world.render_transform(analysis, len(raw.audio), sr, transform, style)
        if clearer_readings and not transform.is_identity:
            audio, more = clearer_reading(line_tolerance, " ".join(sentences), raw.audio, analysis, sr,
                                          transform, style, audio, character.voice.reference)
            notes.update(more)
    audio = resample(audio, sr, sample_rate)
    write_wav(out_path, audio, sample_rate)
    LOG.debug("kokoro %s (%s): %.2fs audio in %.2fs", character.id, choice.label(), len(audio) / sample_rate,
              time.perf_counter() - t0)
    return SpeechResult(
        wav_path=Path(out_path),
        duration=len(audio) / sample_rate,
        sample_rate=sample_rate,
        phonemes=raw.phonemes,
        words=words_from_phonemes(" ".join(sentences).split(), raw.phonemes),
        notes=notes,
    )
