"""A cast may pin a character's base voice (`voice.base`): the name is checked where it is written, only
that base is fitted and spoken (by either backend), its lines get their own cache key, and the progress
notice knows when that one fit is made."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestrator.inputs.checks import VOICE_BASES
from orchestrator.inputs.loading import load_project
from orchestrator.inputs.problems import SpecError
from orchestrator.nodes.speak import speech_key
from orchestrator.schema.cast import CharacterSpec, VoiceSpec
from tests.conftest import EXAMPLE
from tools.base import SpeechKnobs
from tools.speech import bases, fitting
from tools.speech.kokoro import KokoroSynthesizer
from tools.speech.piper import PiperSynthesizer, pinned_base
from tools.speech.world import WorldTransform

VOICES = EXAMPLE / "assets" / "voices"


def _character(base: str | None, cid: str = "hopper") -> CharacterSpec:
    transcripts = json.loads((VOICES / "transcripts.json").read_text())
    return CharacterSpec(id=cid, name=cid, trigger=cid.upper(), images=[Path("x.png")],
                         voice=VoiceSpec(reference=VOICES / f"{cid}.wav", transcript=transcripts[cid], base=base))


def _pin_hopper(tmp_path: Path, base: str) -> tuple[Path, int]:
    """(script, 1-based line of the pin) of a copy of the example whose cast pins `base` for hopper."""
    if not (tmp_path / "orbit").exists():
        shutil.copytree(EXAMPLE, tmp_path / "orbit")
    cast = tmp_path / "orbit" / "cast.yaml"
    lines = [ln for ln in cast.read_text().splitlines() if not ln.startswith("      base: ")]
    at = next(i for i, ln in enumerate(lines) if "reference: assets/voices/hopper.wav" in ln)
    lines.insert(at + 1, f"      base: {base}")
    cast.write_text("\n".join(lines) + "\n")
    return tmp_path / "orbit" / "script.yaml", at + 2


def test_an_unknown_base_is_a_located_error_naming_the_choices(tmp_path):
    script, line = _pin_hopper(tmp_path, "am_nobody")
    with pytest.raises(SpecError) as exc:
        load_project(script)
    (problem,) = exc.value.problems
    assert (problem.line, problem.col) == (line, 13) and "unknown base voice 'am_nobody'" in problem.message
    assert "joe, heart, kokoro, af_alloy" in problem.fix and "bm_lewis" in problem.fix and "leave `base` out" in problem.fix
    for base in ("am_adam", "kokoro"):  # an English pack; the kokoro backend's own voice
        script, _ = _pin_hopper(tmp_path, base)
        assert load_project(script).cast.by_id("hopper").voice.base == base



@pytest.mark.parametrize("base", ["[af_heart]", "42", "{pack: af_heart}"])
def test_a_base_that_is_not_text_is_one_problem_where_it_is_written(tmp_path, base):
    script, line = _pin_hopper(tmp_path, base)
    with pytest.raises(SpecError) as exc:
        load_project(script)
    (problem,) = exc.value.problems  # the schema's; the name check leaves a value that is not a name to it
    assert problem.line == line and "valid string" in problem.message

@pytest.mark.parametrize("blend, ok", [("am_adam+am_michael", True), ("af_heart+af_sky+bf_emma", True),
                                        ("am_adam+am_adam", False), ("am_adam+joe", False), ("am_adam+", False),
                                        ("af_heart+af_sky+bf_emma+am_adam", False), ("am_adam+jf_alpha", False)])
def test_a_blend_of_packs_may_be_pinned_and_a_wrong_one_is_a_located_error(tmp_path, blend, ok):
    script, line = _pin_hopper(tmp_path, blend)
    if ok:
        assert load_project(script).cast.by_id("hopper").voice.base == blend
        return
    with pytest.raises(SpecError) as exc:
        load_project(script)
    (problem,) = exc.value.problems
    assert problem.line == line and f"unknown base voice {blend!r}" in problem.message
    assert "joined by '+'" in problem.fix


def test_a_blend_speaks_the_mean_style_of_its_packs():
    import numpy as np

    from tools.speech import kokoro_voice

    speak, sr, tag = fitting.base_voice(pinned_base("am_adam+af_sky"))
    assert sr == kokoro_voice.SR and tag == "kokoro-v1.0-am_adam+af_sky"
    assert tag != fitting.base_voice(pinned_base("am_adam"))[2]  # its own fits
    mean = (kokoro_voice.pack("am_adam").astype(np.float64) + kokoro_voice.pack("af_sky")) / 2
    by_hand = kokoro_voice.raw_synthesize(["The relays are fine."], mean.astype(np.float32)).audio
    blended = speak(["The relays are fine."]).audio
    assert blended.shape == by_hand.shape and np.abs(blended - by_hand).max() < 1e-4
    for one in ("am_adam", "af_sky"):  # and neither pack's own voice
        alone = kokoro_voice.raw_synthesize(["The relays are fine."], kokoro_voice.pack(one)).audio
        assert alone.shape != blended.shape or np.abs(alone - blended).max() > 0.05


def test_every_name_the_cast_may_pin_is_a_base_the_fit_knows():
    """... but the kokoro backend's own voice, which is made, not fitted (tests/unit/test_own_voice.py)."""
    assert len(VOICE_BASES) == 31 == len(set(VOICE_BASES)) and "kokoro" in VOICE_BASES
    for name in VOICE_BASES:
        if name != "kokoro":
            fitting.base_voice(pinned_base(name))  # raises on a name it does not know
    assert pinned_base("heart") == "heart" and pinned_base("am_adam") == fitting.PACK + "am_adam"


def test_a_pin_gets_its_lines_their_own_cache_key_and_no_pin_keeps_the_old_one():
    from types import SimpleNamespace

    def key(character):
        ctx = SimpleNamespace(speech=SimpleNamespace(name="piper", version="5"),
                              config=SimpleNamespace(sample_rate=24000),
                              project=SimpleNamespace(cast=SimpleNamespace(characters=[character])))
        return speech_key(ctx, "Hello there.", None, character, SpeechKnobs())

    free, heart, adam = key(_character(None)), key(_character("heart")), key(_character("am_adam"))
    assert len({free, heart, adam}) == 3
    # Unpinned, the key is built from the same fields as before pins existed (no cached line is lost).
    import hashlib

    from orchestrator.store import digest_file
    before = {"kind": "speech", "backend": "piper", "version": "5", "text": "Hello there.", "parenthetical": None,
              "voice": digest_file(VOICES / "hopper.wav"), "transcript": _character(None).voice.transcript,
              "others": [], "knobs": SpeechKnobs().as_dict(), "sample_rate": 24000}
    assert free == hashlib.sha256(json.dumps(before, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def test_a_line_spoken_by_other_code_is_keyed_by_that_codes_version_too(monkeypatch):
    """A line's cache key names the version of the code that speaks it: under the piper backend, a pinned
    `kokoro` line is the kokoro line code's (`kokoro_lines.VERSION`), and the kokoro backend's pinned lines, and
    its unpinned ones where the choice is joe, are the piper backend's. A change to either speaks those lines
    anew and leaves the other lines' keys as they were."""
    from types import SimpleNamespace

    from tools.speech import kokoro_lines

    def key(synth, base):
        character = _character(base)
        ctx = SimpleNamespace(speech=synth, config=SimpleNamespace(sample_rate=24000),
                              project=SimpleNamespace(cast=SimpleNamespace(characters=[character])))
        return speech_key(ctx, "Hello there.", None, character, SpeechKnobs())

    piper, kokoro = PiperSynthesizer(), KokoroSynthesizer()
    cases = [(piper, None), (piper, "heart"), (piper, "kokoro"), (kokoro, None), (kokoro, "heart"), (kokoro, "kokoro")]
    before = [key(*case) for case in cases]
    assert len(set(before)) == len(before)
    monkeypatch.setattr(kokoro_lines, "VERSION", "changed")
    moved = [key(*case) != old for case, old in zip(cases, before)]
    assert moved == [False, False, True, False, False, True]  # the kokoro backend's version is read at import
    monkeypatch.undo()
    monkeypatch.setattr(PiperSynthesizer, "version", "changed")
    assert [key(*case) != old for case, old in zip(cases, before)] == [True] * 6


@pytest.fixture
def fits(monkeypatch, tmp_path):
    """Fits recorded instead of made (identity transforms), in an empty cache; the choice must not run."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(fitting, "_MEMO", {})
    made = []

    def fitted(reference, transcript, others=(), base="joe"):
        made.append((Path(reference).name, base, [Path(o).name for o in others]))
        return WorldTransform()

    def no_choice(*args):
        raise AssertionError("a pinned base is not chosen")

    monkeypatch.setattr(fitting, "fitted_transform", fitted)
    monkeypatch.setattr(fitting, "chosen_fit", no_choice)
    monkeypatch.setattr(bases, "chosen_base", no_choice)
    return made


@pytest.mark.parametrize("backend, base", [(PiperSynthesizer, "am_adam"), (KokoroSynthesizer, "am_adam"),
                                           (PiperSynthesizer, "am_adam+af_sky")])
def test_only_the_pinned_base_is_fitted_and_it_speaks_the_line(fits, backend, base, tmp_path):
    others = [VOICES / "collins.wav"]
    res = backend().synthesize("The relays are fine.", _character(base), SpeechKnobs(), tmp_path / "a.wav",
                               others=others)
    assert fits == [("hopper.wav", fitting.PACK + base, ["collins.wav"])]
    assert res.notes["base"] == fitting.PACK + base and res.notes["pinned"] is True
    assert res.duration > 0.5 and res.phonemes  # Kokoro's own timings
    raw = PiperSynthesizer().synthesize("The relays are fine.", _character(base),
                                        SpeechKnobs(matching_strength=0.0), tmp_path / "b.wav")
    assert raw.notes["base"] == fitting.PACK + base and len(fits) == 1  # unmatched: the pinned base, unfitted


def test_the_fit_notice_knows_when_the_pinned_fit_is_made(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(fitting, "_MEMO", {})
    monkeypatch.setattr(fitting, "_fit", lambda *args: WorldTransform())
    hopper, others = _character("heart"), [VOICES / "collins.wav"]
    for tts in (PiperSynthesizer(), KokoroSynthesizer()):
        assert not tts.voice_ready(hopper, others)
    fitting.fitted_transform(hopper.voice.reference, hopper.voice.transcript, others, "joe")
    assert not PiperSynthesizer().voice_ready(hopper, others)  # another base's fit is not the pinned one's
    fitting.fitted_transform(hopper.voice.reference, hopper.voice.transcript, others, "heart")
    for tts in (PiperSynthesizer(), KokoroSynthesizer()):
        assert tts.voice_ready(hopper, others)
    assert not PiperSynthesizer().voice_ready(hopper, [])  # fitted alone is another fit
    monkeypatch.setattr(fitting, "_MEMO", {})  # a new process: only the cache file would say it (none written)
    assert not PiperSynthesizer().voice_ready(hopper, others)
    _, sr, tag = fitting.base_voice("heart")
    key = fitting._fit_key(hopper.voice.reference, hopper.voice.transcript, tuple(others), sr, tag)
    fitting.voice_cache_file(f"{key}.fit.json").write_text("{}")
    assert PiperSynthesizer().voice_ready(hopper, others)
