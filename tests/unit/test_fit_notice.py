"""A character's first line fits their voice (a minute or two here): the speak node says so on the progress
line, and only while the voice is not fitted yet; the backends know from the same cache entry the fit
writes."""
import json
from pathlib import Path
from types import SimpleNamespace

from orchestrator.nodes.speak import announce_fit
from orchestrator.schema.cast import CharacterSpec, VoiceSpec
from tools.speech import bases, fitting
from tools.speech.kokoro import KokoroSynthesizer
from tools.speech.piper import PiperSynthesizer
from tools.speech.world import WorldTransform

VOICES = Path(__file__).resolve().parents[2] / "examples" / "orbit" / "assets" / "voices"


def _cast() -> list[CharacterSpec]:
    transcripts = json.loads((VOICES / "transcripts.json").read_text())
    return [CharacterSpec(id=c, name=c, trigger=c.upper(), images=[Path("x.png")],
                          voice=VoiceSpec(reference=VOICES / f"{c}.wav", transcript=transcripts[c]))
            for c in ("collins", "hopper")]


def _ctx(speech, events: list):
    cast = _cast()
    by_id = {c.id: c for c in cast}
    project = SimpleNamespace(cast=SimpleNamespace(characters=cast, by_id=by_id.__getitem__))
    return SimpleNamespace(speech=speech, project=project, on_event=lambda kind, info: events.append((kind, info)))


def test_the_notice_comes_only_while_the_voice_is_unfitted():
    fitted: set[str] = set()
    seen_others = []

    class Backend:
        def voice_ready(self, character, others):
            seen_others.append([Path(o).name for o in others])
            return character.id in fitted

    events: list = []
    ctx = _ctx(Backend(), events)
    assert announce_fit(ctx, "sc01_sh01", 1, "collins") is True
    assert events == [("stage", {"shot": "sc01_sh01", "attempt": 1,
                                 "stage": "speak: fitting collins's voice to its reference clip, once"})]
    assert seen_others == [["hopper.wav"]]  # the cast the fit keeps the voice away from
    fitted.add("collins")
    assert announce_fit(ctx, "sc01_sh02", 1, "collins") is False and len(events) == 1
    assert announce_fit(_ctx(object(), events), "sc01_sh01", 1, "collins") is False  # a backend that never fits
    assert len(events) == 1


def test_a_reference_gone_since_validation_is_left_to_the_synthesis_to_report(tmp_path):
    events: list = []
    ctx = _ctx(PiperSynthesizer(), events)
    collins = ctx.project.cast.by_id("collins")
    ctx.project.cast.by_id = {"collins": collins.model_copy(update={"voice": collins.voice.model_copy(
        update={"reference": tmp_path / "gone.wav"})})}.__getitem__
    assert announce_fit(ctx, "sc01_sh01", 1, "collins") is False and events == []


def test_piper_knows_its_voice_is_fitted_from_the_entry_the_choice_writes(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(fitting, "_CHOICES", {})
    collins, hopper = _cast()
    others = [hopper.voice.reference]
    tts = PiperSynthesizer()
    assert not tts.voice_ready(collins, others)
    monkeypatch.setattr(fitting, "_choose", lambda *args: fitting.FitChoice("joe", {"joe": 0.5}))
    monkeypatch.setattr(fitting, "fitted_transform", lambda *a, **k: WorldTransform())
    fitting.chosen_fit(collins.voice.reference, collins.voice.transcript, others)
    assert tts.voice_ready(collins, others)
    monkeypatch.setattr(fitting, "_CHOICES", {})  # a new process: the cache entry alone says it
    assert tts.voice_ready(collins, others)
    assert not tts.voice_ready(collins, [])  # fitted alone is another fit
    assert not tts.voice_ready(hopper, [collins.voice.reference])


def test_kokoro_knows_its_base_is_chosen_from_the_entry_the_choice_writes(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(bases, "_MEMO", {})
    collins, hopper = _cast()
    tts = KokoroSynthesizer()
    assert not tts.voice_ready(collins, [hopper.voice.reference])
    monkeypatch.setattr(bases, "_score_all", lambda reference, transcript, others: bases.BaseChoice("jf_alpha"))
    bases.chosen_base(collins.voice.reference, collins.voice.transcript, [hopper.voice.reference])
    monkeypatch.setattr(bases, "_MEMO", {})
    assert tts.voice_ready(collins, [hopper.voice.reference])
    assert not tts.voice_ready(hopper, [collins.voice.reference])
