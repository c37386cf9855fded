"""Cast-aware voice fitting: a voice is fitted toward its own reference and away from the closest of the
rest of the cast's, the fit and every line's cache key depend on exactly those clips, and on real
example voices the cast-aware fit is told apart from the others better than the fit made alone."""
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from orchestrator.nodes.speak import cast_others as speak_others
from orchestrator.nodes.speak import speech_key
from orchestrator.schema.cast import Cast, CharacterSpec, VoiceSpec
from tools.base import SpeechKnobs
from tools.hearing import speaker
from tools.media.audio import load_audio, read_audio, write_wav
from tools.speech import fitting, search
from tools.speech.piper import PiperSynthesizer

VOICES = Path(__file__).resolve().parents[2] / "examples" / "orbit" / "assets" / "voices"
IDS = ("collins", "hopper", "chelsea")
LINE = "The second relay failed an hour ago, and nobody logged it."  # in no fit's sentences


def _cosine(a, b):
    return float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))


def test_cast_score_against_an_independent_computation():
    rng = np.random.default_rng(3)
    e, own, *others = rng.normal(size=(5, 256))
    sims = [_cosine(e, own)] + [_cosine(e, o) for o in others]
    expected = _cosine(e, own) - search.CAST_WEIGHT * max(_cosine(e, o) for o in others)
    assert search.cast_score(sims) == pytest.approx(expected, abs=1e-9)
    assert search.cast_score(sims[:1]) == pytest.approx(_cosine(e, own), abs=1e-9)  # alone: similarity only
    # Moving toward another cast member lowers the score though own similarity is unchanged.
    assert search.cast_score([sims[0], 0.2]) > search.cast_score([sims[0], 0.9])


def test_cast_others_are_distinct_clips_not_the_own_one_in_a_fixed_order(tmp_path):
    clips = {}
    for name, level in (("a", 0.1), ("a_copy", 0.1), ("b", 0.2), ("c", 0.3)):
        clips[name] = tmp_path / f"{name}.wav"
        write_wav(clips[name], np.full(800, level, np.float32), 16000)
    got = fitting.cast_others(clips["a"], [clips["c"], clips["a_copy"], clips["b"], clips["b"]])
    assert sorted(got) == [clips["b"], clips["c"]]  # a clip with the own bytes is the same voice, not another
    assert fitting.cast_others(clips["a"], [clips["b"], clips["c"]]) == got  # the cast's order does not matter
    assert fitting.cast_others(clips["a"], []) == ()


def _cast(folder: Path, order=IDS) -> Cast:
    transcripts = json.loads((VOICES / "transcripts.json").read_text())
    return Cast(characters=[CharacterSpec(id=c, name=c, trigger=c.upper(), images=[Path("x.png")],
                                          voice=VoiceSpec(reference=folder / f"{c}.wav", transcript=transcripts[c]))
                            for c in order])


def _ctx(cast: Cast):
    return SimpleNamespace(speech=PiperSynthesizer(), project=SimpleNamespace(cast=cast),
                           config=SimpleNamespace(sample_rate=24000))


def test_line_cache_key_follows_the_rest_of_the_casts_voices(tmp_path):
    for c in IDS:
        shutil.copy(VOICES / f"{c}.wav", tmp_path / f"{c}.wav")
    cast = _cast(tmp_path)
    collins = cast.by_id("collins")

    def key(c=cast):
        return speech_key(_ctx(c), "Then look at the cat.", None, c.by_id("collins"), SpeechKnobs())

    before = key()
    assert speak_others(_ctx(cast), collins) == [tmp_path / "hopper.wav", tmp_path / "chelsea.wav"]
    assert key(_cast(tmp_path, IDS[::-1])) == before  # the same cast in another order
    x, sr = load_audio(tmp_path / "chelsea.wav")
    write_wav(tmp_path / "chelsea.wav", 0.5 * x, sr)  # another character's voice changes: the fit does
    assert key() != before


@pytest.fixture(scope="module")
def fits():
    """collins' fit alone and with the rest of the example cast (each cached by its digests)."""
    transcript = json.loads((VOICES / "transcripts.json").read_text())["collins"]
    others = [VOICES / f"{c}.wav" for c in IDS[1:]]
    return fitting.fitted_transform(VOICES / "collins.wav", transcript), \
        fitting.fitted_transform(VOICES / "collins.wav", transcript, others)


def test_cast_aware_fit_is_a_fit_of_its_own(fits):
    alone, cast = fits
    assert alone != cast  # not the blind fit from the cache


def test_cast_aware_fit_speaks_further_from_the_other_voices(fits, tmp_path):
    """Measured on a line no fit saw, spoken by the backend given the cast or not: the margin over the
    closest other reference grows. The base is pinned to joe, so that the two fits are the fixture's
    (a choice alone would fit five more bases)."""
    refs = {c: speaker.embed(*load_audio(VOICES / f"{c}.wav")) for c in IDS}
    synth = PiperSynthesizer(clearer_readings=False)
    char = _cast(VOICES).by_id("collins")
    char = char.model_copy(update={"voice": char.voice.model_copy(update={"base": "joe"})})
    margins = {}
    for label, others in (("alone", []), ("cast", [VOICES / f"{c}.wav" for c in IDS[1:]])):
        synth.synthesize(LINE, char, SpeechKnobs(), tmp_path / f"{label}.wav", others=others)
        e = speaker.embed(read_audio(tmp_path / f"{label}.wav", 16000), 16000)
        sims = {c: speaker.similarity(e, r) for c, r in refs.items()}
        margins[label] = sims["collins"] - max(v for c, v in sims.items() if c != "collins")
    assert margins["cast"] > margins["alone"], margins
