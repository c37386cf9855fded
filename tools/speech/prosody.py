"""Parentheticals -> prosody changes applied by the WORLD stage of the piper backend.

Documented mapping (F0 shift in semitones, F0 range factor, energy in dB, breathiness added to the
aperiodicity of voiced frames, piper length scale; > 1 is slower):

| cue (any of)                          | F0 st | range | energy dB | breath | length |
|---------------------------------------|-------|-------|-----------|--------|--------|
| shouting, yelling, screaming          | +4    | 1.30  | +6        | -0.05  | 0.95   |
| whispering                            | unvoiced (pure noise excitation) | -10 | - | 1.05 |
| softly, quietly, gently               | -1    | 0.85  | -6        | +0.10  | 1.05   |
| slowly                                | 0     | 1.00  | 0         | 0      | 1.30   |
| quickly, fast, hurriedly, rushed      | 0     | 1.00  | 0         | 0      | 0.80   |
| sadly, sad, tearful, quietly sad      | -2    | 0.70  | -3        | +0.08  | 1.12   |
| happily, cheerful, excited, laughing  | +2    | 1.25  | +2        | 0      | 0.95   |
| angrily, angry, furious               | +1    | 1.20  | +4        | -0.03  | 0.95   |
| nervously, anxious, scared, afraid    | +1    | 1.15  | -1        | +0.05  | 0.92   |
| calmly, calm, flat, deadpan           | 0     | 0.80  | 0         | 0      | 1.05   |
| sarcastically, dryly                  | -1    | 0.90  | 0         | 0      | 1.08   |

Several cues combine (`(quietly, slowly)`): shifts and energies add, factors multiply. Unknown cues
change nothing here; the text is kept in `Style.instruction` for backends that take instructions
(CosyVoice `inference_instruct2`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Style:
    """Prosody change for one line; the default is neutral."""

    f0_shift_semitones: float = 0.0
    f0_range: float = 1.0
    gain_db: float = 0.0
    breathiness: float = 0.0
    length_scale: float = 1.0
    whisper: bool = False
    instruction: Optional[str] = None  # the parenthetical as text, for instruction-taking backends
    unknown: tuple = ()  # cues this table does not know

    @property
    def is_neutral(self) -> bool:
        return (
            self.f0_shift_semitones == 0 and self.f0_range == 1 and self.gain_db == 0
            and self.breathiness == 0 and self.length_scale == 1 and not self.whisper
        )


# cue words -> (F0 st, range, dB, breath, length, whisper)
_TABLE = {
    ("shouting", "shouts", "yelling", "yells", "screaming", "screams"): (4, 1.30, 6, -0.05, 0.95, False),
    ("whispering", "whispers", "whisper", "whispered"): (0, 1.0, -10, 0.0, 1.05, True),
    ("softly", "quietly", "gently", "soft", "quiet"): (-1, 0.85, -6, 0.10, 1.05, False),
    ("slowly", "slow"): (0, 1.0, 0, 0.0, 1.30, False),
    ("quickly", "fast", "hurriedly", "rushed", "rapidly"): (0, 1.0, 0, 0.0, 0.80, False),
    ("sadly", "sad", "tearful", "crying", "mournfully"): (-2, 0.70, -3, 0.08, 1.12, False),
    ("happily", "happy", "cheerful", "cheerfully", "excited", "laughing"): (2, 1.25, 2, 0.0, 0.95, False),
    ("angrily", "angry", "furious", "furiously"): (1, 1.20, 4, -0.03, 0.95, False),
    ("nervously", "nervous", "anxious", "anxiously", "scared", "afraid"): (1, 1.15, -1, 0.05, 0.92, False),
    ("calmly", "calm", "flat", "deadpan"): (0, 0.80, 0, 0.0, 1.05, False),
    ("sarcastically", "sarcastic", "dryly"): (-1, 0.90, 0, 0.0, 1.08, False),
}
_CUES = {word: effect for words, effect in _TABLE.items() for word in words}
_FILLER = {"and", "but", "very", "a", "bit", "little", "more", "almost", "then", "still", "slightly"}


def from_parenthetical(text: Optional[str]) -> Style:
    """Map a parenthetical such as `(shouting)` or `quietly, slowly` to a Style (see the table)."""
    if not text or not text.strip():
        return Style()
    clean = text.strip().strip("()").strip()
    words = [w for w in re.findall(r"[a-z']+", clean.lower()) if w not in _FILLER]
    st, rng, db, breath, length, whisper = 0.0, 1.0, 0.0, 0.0, 1.0, False
    unknown = []
    for w in words:
        effect = _CUES.get(w)
        if effect is None:
            unknown.append(w)
            continue
        st += effect[0]
        rng *= effect[1]
        db += effect[2]
        breath += effect[3]
        length *= effect[4]
        whisper = whisper or effect[5]
    return Style(
        f0_shift_semitones=st,
        f0_range=rng,
        gain_db=db,
        breathiness=breath,
        length_scale=length,
        whisper=whisper,
        instruction=clean or None,
        unknown=tuple(unknown),
    )
