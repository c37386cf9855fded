"""`kokoro` speech backend: each character speaks in the base voice chosen for their reference clip
(`tools.speech.bases`: joe with its fitted WORLD transform, one of Kokoro-82M's five style packs or
a style searched toward the reference, raw or pitch-matched with WORLD), whichever the fitting
judge hears closest to the reference.

A character whose base is joe, or whose cast entry pins one of the piper backend's bases (`voice.base`), is
spoken by the piper backend unchanged. This backend's own voice (the best of the candidates but joe:
`bases.own_voice`) is named `kokoro` in a line's notes and pinned as `voice.base: kokoro`, which speaks it
under either backend; it is the voice the choice keeps whenever joe is not chosen. A Kokoro character's line is
Kokoro's English speech (`tools.speech.kokoro_voice`) with phoneme timings from the model's own
durations; `matching_strength` scales the pitch match, `seed` and `noise` make a fresh take,
`rate` and the parenthetical's style work as for piper. The clearer-reading check is piper's own
(`tools.speech.clearer`): a pitch-matched line the recogniser hears much worse than
the pack's unmatched reading of it is replaced by a milder reading.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

from orchestrator.schema.cast import CharacterSpec
from tools.base import SpeechKnobs, SpeechResult
from tools.media.packaged import OWN_VOICE
from tools.speech import bases, kokoro_lines, shared_fits
from tools.speech.piper import LINE_TOLERANCE, TAKE_NOISE, PiperSynthesizer

LOG = logging.getLogger(__name__)


class KokoroSynthesizer:
    """Speech in each character's chosen base voice; see the module docstring."""

    name = "kokoro"
    version = kokoro_lines.VERSION  # its own lines are spoken there: bump that when they change (or their notes)
    take_noise = TAKE_NOISE

    def __init__(self, clearer_readings: bool = True, line_tolerance: float = LINE_TOLERANCE):
        self.clearer_readings = clearer_readings
        self.line_tolerance = line_tolerance
        self.piper = PiperSynthesizer(clearer_readings, line_tolerance)

    def voice_ready(self, character: CharacterSpec, others: Sequence[Path] = ()) -> bool:
        """False while the character's base voice is still to be chosen (`bases.chosen_base`: minutes), or, for a
        base the cast pins, to be fitted or made (as the piper backend speaks it, `voice.base: kokoro` included)."""
        if character.voice.base:
            return self.piper.voice_ready(character, others)
        return bases.choice_made(character.voice.reference, character.voice.transcript, others)

    def line_version(self, character: CharacterSpec) -> str:
        """What joins a line's cache key: a pinned base's lines are the piper backend's; an unpinned character's are
        this backend's, or the piper backend's where the choice (made later, minutes) is joe."""
        if character.voice.base:
            return self.piper.line_version(character)
        return f"{self.version}+piper-{self.piper.line_version(character)}"

    def base_candidates(self, character: CharacterSpec, others: Sequence[Path] = ()) -> dict[str, float | None]:
        """What `compose voices --compare` speaks. A character this backend speaks with the piper backend's voice
        (a base pinned from those, or joe chosen) weighs the piper backend's bases. Otherwise this backend's own
        voice comes first, as a cast pins it (`kokoro`: a Japanese pack, perhaps searched or pitch-matched; no
        points), then every base of the piper backend the cast could pin instead, with their points there (its
        choice is made with this one's, so nothing is fitted anew)."""
        voice = character.voice
        instead = self.piper.base_candidates(character, others)
        if voice.base == OWN_VOICE:
            return {OWN_VOICE: None, **instead}
        if voice.base:
            return instead
        choice = bases.chosen_base(voice.reference, voice.transcript, others)
        return instead if choice.base == "joe" else {OWN_VOICE: None, **instead}

    def share_fits(self, character: CharacterSpec, others: Sequence[Path] = ()) -> list[Path]:
        """Copy the character's base choice and fits into `voice-fits/` beside its reference clip (made here if
        need be; `tools.speech.shared_fits`); the files written."""
        voice = character.voice
        if voice.base or bases.chosen_base(voice.reference, voice.transcript, others).base == "joe":
            return self.piper.share_fits(character, others)  # spoken as the piper backend speaks it
        bases.own_voice(voice.reference, voice.transcript)  # kept with the choice: pinned, it is read from there
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
        voice = character.voice
        if voice.base:  # a pinned base is spoken as the piper backend speaks it (`kokoro`: `kokoro_lines.speak_own`)
            return self.piper.synthesize(text, character, knobs, out_path, parenthetical, sample_rate, others)
        choice = bases.chosen_base(voice.reference, voice.transcript, others)
        if choice.base == "joe":  # the piper backend's matched voice: its notes name its own base (joe, heart, a pack)
            return self.piper.synthesize(text, character, knobs, out_path, parenthetical, sample_rate, others)
        return kokoro_lines.speak_choice(choice, self.clearer_readings, self.line_tolerance, text, character, knobs,
                                         out_path, parenthetical, sample_rate)


def create() -> KokoroSynthesizer:
    """Registry factory: the kokoro backend needs nothing from the config."""
    return KokoroSynthesizer()
