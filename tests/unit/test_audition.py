"""`compose voices`: what it advises for each kind of failing score, and its input errors (which lines it
speaks: test_audition_lines.py; the spoken and judged audition itself: tests/e2e/test_example_film.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from orchestrator.audition import ClipFacts, advice, clip_digests, if_rendered, same_clips
from orchestrator.cli import main
from tests.conftest import EXAMPLE
from tools.base import Score


def _score(name, value, threshold, **details):
    return Score(f"{name}[sc01_l01]", value, threshold, higher_is_better=name != "wer", details=details)


def test_the_advice_says_what_failed_and_what_to_change():
    assert advice("hopper", [], ClipFacts(12.0)) == []
    margin = _score("speaker.dvector_margin", -0.04, 0.0011, closest_other="collins")
    (said,) = advice("hopper", [margin], ClipFacts(4.2))
    assert "closer to collins's reference than to hopper's own: margin -0.040 by the d-vector, needs +0.0011" \
        in said["problem"]
    assert "give hopper and collins" in said["fix"] and "the clip is 4.2 s, give 10-30 s" in said["fix"]
    (said,) = advice("hopper", [margin], ClipFacts(6.4, takes=2))  # given as takes: more of them
    assert "the 2 takes join into 6.4 s, give 10-30 s in all (more takes)" in said["fix"]
    assert "short takes may be joined" not in said["fix"]
    level = _score("speaker.margin", 0.01, 0.0305, closest_other="chelsea")
    (said,) = advice("hopper", [level], ClipFacts(12.0))
    assert "about as close to chelsea's reference as to hopper's own: margin +0.010 by resemblyzer" in said["problem"]
    assert "10-30 s" not in said["fix"]
    (said,) = advice("hopper", [level, margin], ClipFacts(12.0))  # the worst of the two judges' margins
    assert "by the d-vector" in said["problem"]
    far = _score("speaker.similarity", 0.61, 0.7028)
    (said,) = advice("hopper", [far], ClipFacts(20.0, 8000))
    assert "similarity 0.610 by resemblyzer, needs 0.703" in said["problem"]
    assert "10-30 s" not in said["fix"] and "nothing above 4000 Hz" in said["fix"]
    misheard = _score("wer", 1.0, 0.6111, text="Ready for dinner!", heard_in_shot="ready for winter")
    (said,) = advice("chelsea", [misheard], ClipFacts(12.0))
    assert "'ready for winter' for 'Ready for dinner!'" in said["problem"]
    assert len(advice("hopper", [margin, far, misheard], ClipFacts(12.0))) == 3
    (said,) = advice("hopper", [margin], ClipFacts(12.0), same_clip=("collins",))
    assert "(the two share one clip)" in said["problem"] and said["fix"] == "give hopper a recording of their own"
    assert "share" not in advice("hopper", [margin], ClipFacts(12.0), same_clip=("chelsea",))[0]["problem"]
    for said in advice("hopper", [margin, far], ClipFacts(12.0), pinned=True):  # a pinned base is the first suspect
        assert said["fix"].startswith("leave `voice.base` out so the fit chooses the base, or ")
    assert not any("voice.base" in a["fix"] for a in advice("hopper", [margin, far], ClipFacts(12.0)))


def test_a_clip_that_does_not_say_its_transcript_is_advice_whatever_the_lines_scored():
    wrong = ClipFacts(12.0, words_wer=0.8, heard="houston this is collins")
    (said,) = advice("hopper", [], wrong)  # every line passed: the clip's words are wrong all the same
    assert said["problem"] == ("hopper's clip does not say its `transcript`: the recogniser heard "
                               "'houston this is collins' (word error rate 0.80, at most 0.5 for a clip)")
    assert said["fix"] == "check that the clip is hopper's and that its `transcript` gives its exact words"
    (said,) = advice("hopper", [], ClipFacts(12.0, takes=3, words_wer=1.0, heard="you"))
    assert "does not say the takes' transcripts" in said["problem"]
    far = _score("speaker.similarity", 0.61, 0.7028)
    assert [a["problem"][:30] for a in advice("hopper", [far], wrong)] == [
        "hopper's clip does not say its", "hopper's lines are far from th"]  # the clip's words first
    assert advice("hopper", [], ClipFacts(12.0, words_wer=0.39, heard="near enough")) == []  # a radio call sign


def test_bad_input_is_exit_2_before_anything_is_spoken(tmp_path, capsys):
    assert main(["voices", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as stop:
        main(["voices", str(EXAMPLE / "script.yaml"), "--lines", "0"])
    assert stop.value.code == 2 and "from 1 to 10" in capsys.readouterr().err


def test_the_next_step_is_the_render_or_the_doubtful_voices_alone():
    from orchestrator.audition import next_step

    def voice(cid, passed, **more):
        return {"id": cid, "passed": passed, **more}

    passing = {"characters": [voice("collins", True), voice("hopper", False, carried_from="2026-12-07 10:00")]}
    assert next_step(passing, "s.yaml") == "next: `compose s.yaml` to render"  # a carried verdict is not this one's
    doubtful = {"characters": [voice("collins", False), voice("hopper", True), voice("chelsea", False)]}
    assert next_step(doubtful, "s.fountain --cast c.yaml") == (
        "next: change collins, chelsea as advised, then hear only them: "
        "`compose voices s.fountain --cast c.yaml --character collins --character chelsea`")
    doubtful["characters"][2]["lines_named"] = ["sc02_l03", "sc01_l05"]  # heard in the lines named: again so
    assert next_step(doubtful, "s.yaml").endswith("`compose voices s.yaml --character collins --line sc02_l03 "
                                                  "--line sc01_l05`")


def test_the_table_shows_thresholds_each_lines_scores_and_the_pins(capsys):
    from rich.console import Console

    from orchestrator.audition import print_audition

    def line(line_id, sim, margin, passed):
        return {"line_id": line_id, "text": "x", "seconds": 1.0, "passed": passed, "scores": [
            _score("speaker.similarity", sim, 0.7028).as_dict() | {"name": f"speaker.similarity[{line_id}]"},
            _score("speaker.margin", margin, 0.0305, closest_other="collins").as_dict()
            | {"name": f"speaker.margin[{line_id}]"}]}

    summary = {"title": "T", "speech": "piper", "silent": ["extra"], "characters": [
        {"id": "collins", "base": "joe", "pinned": False, "where": "cast.yaml:10:18", "advice": [],
         "if_rendered": None, "passed": True, "lines": [line("sc01_l01", 0.874, 0.201, True)]},
        {"id": "hopper", "base": "am_adam", "pinned": True, "where": "cast.yaml:19:18", "passed": False,
         "advice": [{"problem": "P", "fix": "F"}], "if_rendered": "R",
         "lines": [line("sc01_l02", 0.612, -0.1, False)]}]}
    print_audition(summary, Console(file=None, width=100, force_terminal=False))
    out = capsys.readouterr().out
    rows = {ln.split()[0]: ln.split() for ln in out.splitlines() if ln.split()}
    assert rows["needs"][1:] == ["≥0.703", "≥+0.0305"]
    assert rows["collins"][1:] == ["joe", "sc01_l01", "0.874", "+0.201", "pass"]
    assert rows["hopper"][1:] == ["am_adam*", "sc01_l02", "0.612", "-0.100", "FAIL"]
    assert "* pinned in the cast" in out and "cast.yaml:19:18: P (fix: F)" in out and "hopper: R" in out
    assert "no lines, not auditioned: extra" in out and "1 of 2 voices pass; doubtful: hopper" in out
    assert "since the last audition" not in out  # the first audition in a folder

    summary["since_last"] = {"written": "2026-12-06 13:44", "changes": {}}
    print_audition(summary, Console(file=None, width=100, force_terminal=False))
    assert "since the last audition here (2026-12-06 13:44): every voice sounds as it did" in capsys.readouterr().out
    summary["since_last"]["changes"] = {"hopper": ["base joe -> am_adam", "its `voice.base` was pinned"]}
    print_audition(summary, Console(file=None, width=100, force_terminal=False))
    out = capsys.readouterr().out.splitlines()
    said = out.index("since the last audition here (2026-12-06 13:44):")
    assert out[said + 1] == "  hopper: base joe -> am_adam; its `voice.base` was pinned"


def test_the_verdict_stays_whole_on_an_80_column_terminal(capsys):
    """A log file or an 80-column terminal: rich narrows the table, and it was the verdict that lost its letters
    ("pa…", "FA…") once a base was named af_jessica."""
    from rich.console import Console

    from orchestrator.audition import print_audition

    def line(line_id, passed):
        scores = [_score(n, v, t) for n, v, t in (
            ("speaker.similarity", 0.812, 0.7028), ("speaker.margin", 0.269, 0.0305),
            ("speaker.dvector_similarity", 0.786, 0.584), ("speaker.dvector_margin", 0.357, 0.0011),
            ("wer", 0.143, 0.6111))]
        return {"line_id": line_id, "text": "x", "seconds": 1.0, "passed": passed,
                "scores": [sc.as_dict() | {"name": sc.name.replace("sc01_l01", line_id)} for sc in scores]}

    summary = {"title": "T", "speech": "piper", "silent": [], "characters": [
        {"id": "biscuit", "base": "af_jessica", "pinned": True, "where": "cast.yaml:1:1", "advice": [],
         "if_rendered": None, "passed": False, "lines": [line("sc01_l04", False), line("sc02_l02", True)]}]}
    print_audition(summary, Console(file=None, width=80, force_terminal=False))
    rows = [ln.split() for ln in capsys.readouterr().out.splitlines() if ln.startswith(" biscuit")]
    assert [r[-1] for r in rows] == ["FAIL", "pass"] and all(r[1] == "af_jessica*" for r in rows)


def test_compare_needs_a_backend_that_names_its_bases():
    from types import SimpleNamespace

    from orchestrator.audition import compare_bases

    ctx = SimpleNamespace(speech=object())  # the kokoro and cosyvoice backends name none
    assert compare_bases(ctx, "collins", None, None) is None


def test_a_script_without_dialogue_has_nothing_to_audition(capsys):
    from rich.console import Console

    from orchestrator.audition import print_audition

    print_audition({"title": "T", "speech": "piper", "silent": ["collins"], "characters": []},
                   Console(file=None, width=100, force_terminal=False))
    assert capsys.readouterr().out.strip() == "no character speaks a line in this script: nothing to audition"


def test_the_advice_names_a_noisy_or_distorted_clip():
    far = _score("speaker.similarity", 0.61, 0.7028)
    (said,) = advice("hopper", [far], ClipFacts(12.0, over_floor_db=13.4))
    assert "its pauses are only 13 dB below the speech (background noise)" in said["fix"]
    (said,) = advice("hopper", [far], ClipFacts(12.0, clipped=0.0686))
    assert "6.9% of its samples are at full scale" in said["fix"]
    (said,) = advice("hopper", [far], ClipFacts(12.0, over_floor_db=34.0, clipped=0.0))
    assert said["fix"].endswith("with its exact transcript")  # a clean, long, full-band clip: nothing to add


def test_clip_levels_against_known_noise_and_clipping():
    import numpy as np

    from tools.media.audio import clip_levels, load_audio

    x, sr = load_audio(EXAMPLE / "assets" / "voices" / "hopper.wav")
    clean, _ = clip_levels(x, sr)
    rng = np.random.default_rng(0)
    noisy = [clip_levels(x + rng.normal(0, sd, len(x)), sr)[0] for sd in (0.003, 0.03)]
    assert clean > 40 and clean > noisy[0] > 25 > 20 > noisy[1]  # measured 66, 33, 13 dB
    # Independent: the floor of speech-free noise alone is its own level, so a tone over noise reads its ratio.
    t = np.arange(sr * 4) / sr
    tone = np.where((t % 1.0) < 0.5, 0.5 * np.sin(2 * np.pi * 200 * t), 0.0) + rng.normal(0, 0.005, len(t))
    expected = 10 * np.log10((0.5 ** 2 / 2 + 0.005 ** 2) / 0.005 ** 2)
    assert abs(clip_levels(tone, sr)[0] - expected) < 1.5
    assert clip_levels(np.clip(x * 8, -1, 1), sr)[1] > 0.01 and clip_levels(x, sr)[1] == 0.0


def test_validate_points_to_the_audition(capsys):
    assert main(["validate", str(EXAMPLE / "script.fountain"), "--cast", str(EXAMPLE / "cast.yaml")]) == 0
    err = capsys.readouterr().err
    inputs = f"{EXAMPLE / 'script.fountain'} --cast {EXAMPLE / 'cast.yaml'}"
    assert f"next: `compose voices {inputs}` to hear the cast, `compose {inputs}` to render" in err


def test_characters_sharing_one_clip_are_found_by_its_bytes(example_project, tmp_path):
    """Two characters whose clips are two files of the same bytes share one clip; a third does not."""
    cast = example_project.cast.characters
    (tmp_path / "copy.wav").write_bytes(cast[0].voice.reference.read_bytes())
    twin = cast[1].model_copy(update={"voice": cast[1].voice.model_copy(update={"reference": tmp_path / "copy.wav"})})
    a, b, c = cast[0].id, twin.id, cast[2].id
    assert same_clips(clip_digests([cast[0], twin, cast[2]])) == {a: (b,), b: (a,), c: ()}
    assert same_clips(clip_digests(cast)) == {x.id: () for x in cast}


def _retake_ctx(tmp_path, passes_from_seed: int):
    """A run context whose speech backend says each take's knobs (its notes) and whose one judge passes a
    line spoken with seed >= `passes_from_seed`: `retakes` measured without models."""
    import json
    from types import SimpleNamespace

    from orchestrator.store import Cache
    from tools.base import SpeechResult
    from tools.media.audio import write_wav

    class Takes:
        name, version, take_noise = "takes", "1", 0.3

        def synthesize(self, text, character, knobs, out_path, parenthetical, sample_rate, others=()):
            write_wav(out_path, np.full(2400, 0.1 * (1 + knobs.seed), np.float32), sample_rate)
            return SpeechResult(Path(out_path), 0.1, sample_rate, [], [], {"knobs": json.dumps(knobs.as_dict())})

    class Judge:
        def score_lines(self, cast, lines):
            seed = json.loads(lines[0].speech.notes["knobs"])["seed"]
            return [Score(f"speaker.similarity[{lines[0].line_id}]", 0.9 if seed >= passes_from_seed else 0.5, 0.7028)]

    character = SimpleNamespace(id="hopper", voice=SimpleNamespace(reference=EXAMPLE / "assets/voices/hopper.wav",
                                                                   transcript="words", base=None))
    return SimpleNamespace(speech=Takes(), evaluators=lambda: [Judge()], cache=Cache(tmp_path / "cache"),
                           config=SimpleNamespace(sample_rate=24000, seed=0, max_attempts=3), stop=None,
                           project=SimpleNamespace(cast=SimpleNamespace(characters=[character],
                                                                        by_id=lambda cid: character)))


@pytest.mark.parametrize("passes_from_seed, takes", [(2, 2), (9, 2), (1, 1)])
def test_a_failing_line_is_taken_again_as_the_retry_policy_would(tmp_path, passes_from_seed, takes):
    import threading

    from orchestrator.audition import retakes
    from orchestrator.retry import plan_retry
    from orchestrator.schema.plan import SpeechSegment
    from tools.base import SpeechKnobs, VideoKnobs
    from tools.media.audio import load_audio

    ctx = _retake_ctx(tmp_path, passes_from_seed)
    ctx.stop = threading.Event()
    first = [Score("speaker.similarity[sc01_l02]", 0.5, 0.7028)]
    seg = SpeechSegment(line_id="sc01_l02", speaker="hopper", text="The relays are fine.", start=0.0)
    got = retakes(ctx, seg, first, tmp_path / "hopper-sc01_l02.wav")
    assert [t["attempt"] for t in got] == [2, 3][:takes]
    knobs, scores = SpeechKnobs(seed=0), first  # the retry policy's own knobs, take by take
    for t in got:
        knobs, _, changes, why = plan_retry(scores, knobs, VideoKnobs(), t["attempt"] - 1, take_noise=0.3,
                                            audio_guidance=None)
        assert t["changes"] == changes and t["why"] == why and "full matching and a new take" in why
        audio, _ = load_audio(t["wav"])
        assert Path(t["wav"]).name == f"hopper-sc01_l02-take{t['attempt']}.wav"
        assert np.allclose(audio, 0.1 * (1 + knobs.seed), atol=1e-3)  # spoken with exactly those knobs
        scores = [Score(s["name"], s["value"], s["threshold"]) for s in t["scores"]]
        assert t["passed"] == (knobs.seed >= passes_from_seed)
    line = {"line_id": "sc01_l02", "passed": False, "takes": got}
    said = if_rendered([line, {"line_id": "sc01_l01", "passed": True}], 3)
    if got[-1]["passed"]:
        assert f"sc01_l02: take {got[-1]['attempt']} passes (speaker.similarity[sc01_l02] failed" in said
    else:
        assert "sc01_l02: no take of 3 passes, so its shot ends best_effort" in said
    assert "sc01_l01" not in said and "up to 3 attempts" in said
    assert if_rendered([{"line_id": "sc01_l01", "passed": True}], 3) is None


def test_the_judges_listen_side_by_side_and_each_line_keeps_its_own_scores(tmp_path):
    """`judge`: the two judges run at once (each waits at a barrier for the other: one after the other, the
    first would wait alone and fail), every line gets each judge's score of that line, in the judges' order;
    a Ctrl-C's stop in the caller reaches the pool's threads."""
    import threading
    from types import SimpleNamespace

    from orchestrator.audition import judge
    from tools.base import RunStopped, SpeechResult, SpokenLine, check_stopped, map_in_context, stoppable

    met = threading.Barrier(2, timeout=10)

    class Judge:
        def __init__(self, name):
            self.name, self.first = name, True

        def score_lines(self, cast, lines):
            if self.first:
                self.first = False
                met.wait()
            return [Score(f"{self.name}[{ln.line_id}]", float(ln.line_id[-1]), 0.5) for ln in lines]

    lines = [SpokenLine(f"sc01_l0{k}", "hopper", "words", 0.0, SpeechResult(tmp_path / f"{k}.wav", 1.0, 24000, [], [],
                                                                             {})) for k in (1, 2, 3)]
    ctx = SimpleNamespace(evaluators=lambda: [Judge("a"), Judge("b")], project=SimpleNamespace(cast=None))
    heard = judge(ctx, lines)
    assert {k: [(s.name, s.value) for s in v] for k, v in heard.items()} == {
        ln.line_id: [(f"a[{ln.line_id}]", float(ln.line_id[-1])), (f"b[{ln.line_id}]", float(ln.line_id[-1]))]
        for ln in lines}
    assert map_in_context(lambda x: x * 2, [3, 1, 2], 2) == [6, 2, 4]
    stop = threading.Event()
    stop.set()
    with stoppable(stop), pytest.raises(RunStopped):
        map_in_context(lambda _: check_stopped(), [1, 2], 2)
    assert map_in_context(lambda _: check_stopped(), [1, 2], 2) == [None, None]  # outside the block: no stop


def _compare_ctx(tmp_path, example_project, candidates: dict):
    """A run context over the example's hopper whose speech backend weighs `candidates` and speaks each line as
    a constant naming the pin it was given (notes: `base`, the pin or the backend's own choice, the first
    candidate), and whose one judge passes everything: `compare_bases` measured without models."""
    import json
    from types import SimpleNamespace

    from orchestrator.store import Cache
    from tools.base import SpeechResult
    from tools.media.audio import write_wav

    own = next(iter(candidates))

    class Weighs:
        name, version, take_noise = "weighs", "1", 0.3

        def base_candidates(self, character, others):
            assert character.voice.base is None and len(others) == 2
            return candidates

        def synthesize(self, text, character, knobs, out_path, parenthetical, sample_rate, others=()):
            base = character.voice.base
            write_wav(out_path, np.full(2400, 0.01 * (1 + list(candidates).index(base or own)), np.float32),
                      sample_rate)
            return SpeechResult(Path(out_path), 0.1, sample_rate, [], [], {"base": base or own,
                                                                           "pinned": json.dumps(base)})

    class Judge:
        def score_lines(self, cast, lines):
            return [Score(f"speaker.similarity[{lines[0].line_id}]", 0.9, 0.7028)]

    return SimpleNamespace(speech=Weighs(), evaluators=lambda: [Judge()], cache=Cache(tmp_path / "cache"),
                           config=SimpleNamespace(sample_rate=24000, seed=0, max_attempts=3), stop=None,
                           project=example_project)


def test_compare_speaks_the_backends_own_choice_as_chosen_and_pins_the_rest(tmp_path, example_project, capsys):
    """A backend whose own choice no cast can pin (as the kokoro backend's was before `kokoro`): that row is spoken
    unpinned and marked, every other base pinned as `voice.base` would pin it; a backend that puts an
    unpinnable base anywhere but first is refused (it would be spoken as the choice under another name)."""
    import json

    from orchestrator.audition import compare_bases, print_audition
    from orchestrator.schema.plan import SpeechSegment
    from tools.media.audio import load_audio

    seg = SpeechSegment(line_id="sc01_l02", speaker="hopper", text="The relays are fine.", start=0.0)
    candidates = {"jf_alpha": None, "joe": 3.0, "am_adam": 1.0, "am_adam+am_michael": None}
    rows = compare_bases(_compare_ctx(tmp_path, example_project, candidates), "hopper", seg, tmp_path)
    assert [(r["base"], r["fit_score"], r["chosen"], r["pinnable"], r["pinned"]) for r in rows] == [
        ("jf_alpha", None, True, False, False), ("joe", 3.0, False, True, False),
        ("am_adam", 1.0, False, True, False), ("am_adam+am_michael", None, False, True, False)]
    assert [json.loads(r["notes"]["pinned"]) for r in rows] == [None, "joe", "am_adam", "am_adam+am_michael"]
    for k, r in enumerate(rows):
        assert np.allclose(load_audio(r["wav"])[0], 0.01 * (1 + k), atol=1e-3)
    summary = {"title": "t", "speech": "weighs", "silent": [], "characters": [
        {"id": "hopper", "base": "jf_alpha", "pinned": False, "passed": True, "advice": [], "if_rendered": None,
         "lines": [{"line_id": "sc01_l02", "scores": rows[0]["scores"], "passed": True}], "bases": rows}]}
    print_audition(summary, Console(width=200, force_terminal=False))
    out = capsys.readouterr().out
    assert "jf_alpha†" in out and "joe†" not in out and "†: the backend's own choice" in out
    summary["characters"][0]["bases"] = rows[1:]
    print_audition(summary, Console(width=200, force_terminal=False))
    assert "†" not in capsys.readouterr().out
    with pytest.raises(ValueError, match="only its first"):
        compare_bases(_compare_ctx(tmp_path, example_project, {"joe": 3.0, "jf_alpha": None}), "hopper", seg,
                      tmp_path)


def test_the_kokoro_backend_weighs_its_own_choice_then_the_bases_a_cast_can_pin(monkeypatch, example_project):
    """Its own voice first, as a cast pins it (`kokoro`, no points), then the piper backend's bases with theirs,
    whether chosen or pinned; a character it speaks in the piper backend's voice (joe chosen, or one of that
    backend's bases pinned) weighs the piper backend's alone."""
    from tools.speech import bases
    from tools.speech.kokoro import KokoroSynthesizer
    from tools.speech.piper import PiperSynthesizer

    piper = {"heart": 4, "joe": 3, "am_adam": None}
    monkeypatch.setattr(PiperSynthesizer, "base_candidates", lambda self, character, others=(): piper)
    hopper = example_project.cast.by_id("hopper")
    for chosen, weighed in (("jf_nezumi", {"kokoro": None, **piper}), ("joe", piper)):
        monkeypatch.setattr(bases, "chosen_base", lambda ref, transcript, others=(), c=chosen: bases.BaseChoice(c))
        assert list(KokoroSynthesizer().base_candidates(hopper).items()) == list(weighed.items())
    pinned = hopper.model_copy(update={"voice": hopper.voice.model_copy(update={"base": "am_adam"})})
    monkeypatch.setattr(bases, "chosen_base", lambda *a, **k: pytest.fail("a pinned voice makes no kokoro choice"))
    assert KokoroSynthesizer().base_candidates(pinned) == piper
    own = hopper.model_copy(update={"voice": hopper.voice.model_copy(update={"base": "kokoro"})})
    assert list(KokoroSynthesizer().base_candidates(own).items()) == [("kokoro", None), *piper.items()]
