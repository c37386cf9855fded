"""`kokoro` speech backend: each character speaks in the base voice chosen for their reference clip
(`tools.speech.bases`: joe with its fitted WORLD transform, one of Kokoro-82M's five style packs or
a style searched toward the reference, raw or pitch-matched with WORLD), whichever the fitting
judge hears closest to the reference.

A character whose base is joe, or whose cast entry pins a base (`voice.base`), is spoken by the piper
backend unchanged. A Kokoro character's line is
Kokoro's English speech (`tools.speech.kokoro_voice`) with phoneme timings from the model's own
durations; `matching_strength` scales the pitch match, `seed` and `noise` make a fresh take,
`rate` and the parenthetical's style work as for piper. The clearer-reading check is piper's own
(`tools.speech.piper.clearer_reading`): a pitch-matched line the recogniser hears much worse than
the pack's unmatched reading of it is replaced by a milder reading.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from orchestrator.schema.cast import CharacterSpec
from tools.base import SpeechKnobs, SpeechResult
from tools.media.audio import resample, write_wav
from tools.speech import bases, kokoro_voice, prosody, shared_fits, text_norm, world
from tools.speech.piper import LINE_TOLERANCE, TAKE_NOISE, PiperSynthesizer, clearer_reading
from tools.speech.piper_voice import words_from_phonemes

LOG = logging.getLogger(__name__)


class KokoroSynthesizer:
    """Speech in each character's chosen base voice; see the module docstring."""

    name = "kokoro"
    version = "3"  # joins the speech cache key: bump when lines change
    take_noise = TAKE_NOISE

    def __init__(self, clearer_readings: bool = True, line_tolerance: float = LINE_TOLERANCE):
        self.clearer_readings = clearer_readings
        self.line_tolerance = line_tolerance
        self.piper = PiperSynthesizer(clearer_readings, line_tolerance)

    def voice_ready(self, character: CharacterSpec, others: Sequence[Path] = ()) -> bool:
        """False while the character's base voice is still to be chosen (`bases.chosen_base`: minutes), or,
        for a base the cast pins, to be fitted (as the piper backend speaks it)."""
        if character.voice.base:
            return self.piper.voice_ready(character, others)
        return bases.choice_made(character.voice.reference, character.voice.transcript, others)

    def base_candidates(self, character: CharacterSpec, others: Sequence[Path] = ()) -> dict[str, float | None]:
        """What `compose voices --compare` speaks. A character this backend speaks with the piper backend's voice
        (a pinned base, or joe chosen) weighs the piper backend's bases. Otherwise this backend's own choice
        comes first, named as its lines' notes name it (a Japanese pack, perhaps searched or pitch-matched: no
        base a cast can pin, so heard as chosen, with no points), then every base the cast could pin instead
        (the piper backend's, with their points there; its choice is made with this one's, so nothing is
        fitted anew)."""
        instead = self.piper.base_candidates(character, others)
        if character.voice.base:
            return instead
        choice = bases.chosen_base(character.voice.reference, character.voice.transcript, others)
        return instead if choice.base == "joe" else {choice.base: None, **instead}

    def share_fits(self, character: CharacterSpec, others: Sequence[Path] = ()) -> list[Path]:
        """Copy the character's base choice and fits into `voice-fits/` beside its reference clip (made here if
        need be; `tools.speech.shared_fits`); the files written."""
        voice = character.voice
        if voice.base or bases.chosen_base(voice.reference, voice.transcript, others).base == "joe":
            return self.piper.share_fits(character, others)  # spoken as the piper backend speaks it
        return shared_fits.share(voice.reference)

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
        """Speak one line in the character's chosen base voice into `out_path`."""
        t0 = time.perf_counter()
        if character.voice.base:  # a base the cast pins is the piper backend's matched voice; no choice here
            return self.piper.synthesize(text, character, knobs, out_path, parenthetical, sample_rate, others)
        choice = bases.chosen_base(character.voice.reference, character.voice.transcript, others)
        if choice.base == "joe":  # the piper backend's matched voice: its notes name its own base (joe, heart, a pack)
            return self.piper.synthesize(text, character, knobs, out_path, parenthetical, sample_rate, others)
        sentences = text_norm.prepare_line(text, where=f"line for {character.id}")
        style = prosody.from_parenthetical(parenthetical or knobs.emotion)
        transform = choice.transform(float(np.clip(knobs.matching_strength, 0.0, 1.0)))
        length_scale = style.length_scale / max(knobs.rate, 0.1)
        raw = kokoro_voice.raw_synthesize(sentences, choice.style(), length_scale, knobs.noise, knobs.seed)
        sr = raw.sample_rate
        notes = {"base": choice.base}
        if transform.is_identity and style.is_neutral:
            audio = raw.audio
        else:
            analysis = world.analyse_synthetic(raw.audio, sr)
            audio = world.render_transform(analysis, len(raw.audio), sr, transform, style)
            if self.clearer_readings and not transform.is_identity:
                audio, more = clearer_reading(self.line_tolerance, " ".join(sentences), raw.audio, analysis, sr,
                                              transform, style, audio, character.voice.reference)
                notes.update(more)
        audio = resample(audio, sr, sample_rate)
        write_wav(out_path, audio, sample_rate)
        LOG.debug("kokoro %s (%s): %.2fs audio in %.2fs", character.id, choice.base, len(audio) / sample_rate,
                  time.perf_counter() - t0)
        return SpeechResult(
            wav_path=Path(out_path),
            duration=len(audio) / sample_rate,
            sample_rate=sample_rate,
            phonemes=raw.phonemes,
            words=words_from_phonemes(" ".join(sentences).split(), raw.phonemes),
            notes=notes,
        )


def create() -> KokoroSynthesizer:
    """Registry factory: the kokoro backend needs nothing from the config."""
    return KokoroSynthesizer()
