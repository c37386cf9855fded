"""`voice.base: kokoro`: the kokoro backend's own voice (`bases.own_voice`, the best candidate but joe) is the
voice its choice keeps when joe is not chosen, is made without the rest of the cast, and is spoken the same by
either backend. Measured with one Japanese pack, two short scoring sentences and a two-step style search (the
real choice weighs five packs and 40 steps: minutes), so the candidates are the pack and the searched style,
each raw and pitch-matched."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from orchestrator.schema.cast import CharacterSpec, VoiceSpec
from tests.conftest import EXAMPLE
from tools.base import SpeechKnobs
from tools.media.audio import load_audio
from tools.speech import bases, kokoro_voice, style_search
from tools.speech.kokoro import KokoroSynthesizer
from tools.speech.piper import PiperSynthesizer

VOICES = EXAMPLE / "assets" / "voices"
TRANSCRIPTS = json.loads((VOICES / "transcripts.json").read_text())


def _hopper(base: str | None = None, cid: str = "hopper") -> CharacterSpec:
    return CharacterSpec(id=cid, name=cid, trigger=cid.upper(), images=[Path("x.png")],
                         voice=VoiceSpec(reference=VOICES / f"{cid}.wav", transcript=TRANSCRIPTS[cid], base=base))


@pytest.fixture
def small_choice(monkeypatch, tmp_path):
    """One pack, two search steps, an empty cache; joe's matched speech replaced by a hum (heard far from any
    voice and as no words, so never kept): the list of casts joe was asked for is returned."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(bases, "_MEMO", {})
    monkeypatch.setattr(kokoro_voice, "PACKS", ("jf_alpha",))
    monkeypatch.setattr(bases, "SCORE_SENTENCES", ["The lamp is lit.", "Then we wait."])
    search = style_search.search_style
    monkeypatch.setattr(style_search, "search_style", lambda start, score, clear: search(start, score, clear, 2))
    asked = []

    def hum(reference, transcript, others):
        asked.append(sorted(Path(o).name for o in others))
        t = np.arange(2 * 24000) / 24000
        return [(0.1 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)] * 2, 24000

    monkeypatch.setattr(bases, "_joe", hum)
    return asked


def _same_voice(a: bases.BaseChoice, b: bases.BaseChoice) -> bool:
    return (a.base, a.f0_shift, a.f0_range, a.style_offset) == (b.base, b.f0_shift, b.f0_range, b.style_offset)


def test_the_own_voice_is_the_choice_but_joe_and_needs_no_cast(small_choice, monkeypatch, tmp_path):
    hopper, cast = _hopper(), [VOICES / "collins.wav", VOICES / "chelsea.wav"]
    ref, text = hopper.voice.reference, hopper.voice.transcript
    assert not bases.own_voice_made(ref, text)
    choice = bases.chosen_base(ref, text, cast)
    assert small_choice == [["chelsea.wav", "collins.wav"]] and choice.base == "jf_alpha"  # the hum is not kept
    assert set(choice.scores) == {"joe", "jf_alpha", "jf_alpha+pitch", "search", "search+pitch"}
    assert bases.own_voice_made(ref, text)  # kept on the way
    own = bases.own_voice(ref, text)
    assert _same_voice(own, choice) and own.scores == {k: v for k, v in choice.scores.items() if k != "joe"}

    # Made afresh on its own, in another empty cache: the same voice, and joe is never asked for.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-cache"))
    monkeypatch.setattr(bases, "_MEMO", {})
    assert not bases.own_voice_made(ref, text)
    spoken, synthesize = [], kokoro_voice.raw_synthesize

    def counted(sentences, style, *args, **kwargs):
        spoken.append((hashlib.sha256(np.asarray(style, np.float32).tobytes()).hexdigest(), tuple(sentences)))
        return synthesize(sentences, style, *args, **kwargs)

    monkeypatch.setattr(kokoro_voice, "raw_synthesize", counted)
    fresh = bases.own_voice(ref, text)
    assert _same_voice(fresh, own) and fresh.scores == own.scores and len(small_choice) == 1
    # each style spoke each sentence once: the pack (where the search starts too), two steps, a kept one's words
    assert len(spoken) == len(set(spoken)) >= 6
    best = max((n for n in own.scores), key=lambda n: own.scores[n][0])  # the closest by the fitting judge ...
    floor = own.scores["jf_alpha"][1] - bases.FLOOR_NATS  # ... of those over the intelligibility floor
    assert own.scores[best][1] < floor or own.label().startswith("jf_alpha") and (
        ("searched" in own.label()) == best.startswith("search") and ("pitch" in own.label()) == best.endswith("pitch"))

    # Pinned, either backend speaks it the same, and so does the kokoro backend unpinned (its choice is it).
    pinned, knobs = _hopper("kokoro"), SpeechKnobs()
    assert PiperSynthesizer().voice_ready(pinned) and KokoroSynthesizer().voice_ready(pinned)
    assert not PiperSynthesizer().voice_ready(_hopper("kokoro", "collins"))  # another clip's is not made
    by_piper = PiperSynthesizer().synthesize("The relays are fine.", pinned, knobs, tmp_path / "p.wav", others=cast)
    by_kokoro = KokoroSynthesizer().synthesize("The relays are fine.", pinned, knobs, tmp_path / "k.wav")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # where the choice is
    monkeypatch.setattr(bases, "_MEMO", {})
    unpinned = KokoroSynthesizer().synthesize("The relays are fine.", hopper, knobs, tmp_path / "u.wav", others=cast)
    assert len(small_choice) == 1  # read back, not made again
    heard = [load_audio(r.wav_path)[0] for r in (by_piper, by_kokoro, unpinned)]
    assert np.array_equal(heard[0], heard[1]) and np.array_equal(heard[0], heard[2]) and len(heard[0]) > 12000
    assert by_piper.notes == by_kokoro.notes and by_piper.notes["pinned"] is True
    assert unpinned.notes["base"] == by_piper.notes["base"] == "kokoro" and "pinned" not in unpinned.notes
    assert unpinned.notes["voice"] == by_piper.notes["voice"] == own.label() and by_piper.phonemes
