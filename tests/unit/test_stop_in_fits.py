"""A Ctrl-C ends a voice fit at its next step, not at its end (a choice fits five or six bases: minutes).

The speak node runs the backend within `tools.base.stoppable(ctx.stop)`; the fit's search checks
before every candidate it renders, the style search before every step, and the choice's pool threads
hear the caller's stop (`tools.base.in_context`). A stopped fit writes no cache entry and publishes no
line; without a stop (or outside `stoppable`) nothing changes.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.nodes.speak import synthesize_line
from orchestrator.store import Cache
from tests.conftest import EXAMPLE
from tools.base import RunStopped, SpeechKnobs, SpeechResult, check_stopped, in_context, stoppable
from tools.speech import fitting, packs, search
from tools.speech.world import WorldTransform

VOICES = EXAMPLE / "assets" / "voices"


def test_check_stopped_hears_only_the_stop_of_its_own_block():
    stop = threading.Event()
    check_stopped()  # outside any block: never raises
    with stoppable(stop):
        check_stopped()
        stop.set()
        with pytest.raises(RunStopped):
            check_stopped()
        with stoppable(threading.Event()):  # an inner block (another run) has its own stop
            check_stopped()
    check_stopped()  # the block is over


def test_a_pool_thread_hears_the_stop_only_through_in_context():
    stop, seen = threading.Event(), {}

    def probe(name: str) -> None:
        try:
            check_stopped()
            seen[name] = "ran on"
        except RunStopped:
            seen[name] = "stopped"

    stop.set()
    with stoppable(stop):
        plain = threading.Thread(target=probe, args=("plain",))
        carried = threading.Thread(target=in_context(probe), args=("carried",))
        for t in (plain, carried):
            t.start()
            t.join()
    assert seen == {"plain": "ran on", "carried": "stopped"}


def _slow_fits(monkeypatch, stop: threading.Event):
    """`_choose` over fake fits that each take 100 steps, checking for a stop before each; the first fit
    sets `stop` at its tenth step (the user's Ctrl-C). Returns the steps each fit took."""
    steps: dict[str, int] = {}

    def fitted_transform(reference, transcript, others, base):
        for i in range(100):
            check_stopped()
            steps[base] = i + 1
            if base == "joe" and i == 9:
                stop.set()
            time.sleep(0.002)
        return WorldTransform()

    listener = SimpleNamespace(similarities=lambda audio, sr: [0.5])
    monkeypatch.setattr(fitting, "fitted_transform", fitted_transform)
    monkeypatch.setattr(fitting, "fitted_speech", lambda base, tf, sentences: ([base], 16000))
    monkeypatch.setattr(packs, "pack_candidates", lambda listener: ["kokoro:af_river", "kokoro:am_puck"])
    monkeypatch.setattr(search, "fitting_listener", lambda reference, others: listener)
    monkeypatch.setattr(fitting.speaker, "Listener", lambda references, judge: listener)
    return steps


def test_a_stop_ends_every_fit_of_a_choice_at_its_next_step(monkeypatch, tmp_path):
    stop = threading.Event()
    steps = _slow_fits(monkeypatch, stop)
    with stoppable(stop), pytest.raises(RunStopped):
        fitting._choose(tmp_path / "ref.wav", "words", ())
    assert steps["joe"] == 10 and all(n < 100 for n in steps.values()), steps  # none ran to its end
    assert set(steps) <= {"joe", "heart"}  # the bases queued behind the pool's two stopped before a step


def test_without_a_stop_block_the_same_fits_run_to_their_end(monkeypatch, tmp_path):
    stop = threading.Event()
    steps = _slow_fits(monkeypatch, stop)
    choice = fitting._choose(tmp_path / "ref.wav", "words", ())  # the Ctrl-C of no run this call belongs to
    assert stop.is_set() and steps == {b: 100 for b in ("joe", "heart", "kokoro:af_river", "kokoro:am_puck")}
    assert choice.base == "joe"


def test_a_real_fit_stops_at_its_next_candidate_and_caches_nothing(monkeypatch, tmp_path):
    """A real fit of hopper's voice from joe: the Ctrl-C comes while the search renders its third
    candidate; no fourth is rendered and no fit entry is written."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(fitting, "_MEMO", {})
    stop, rendered = threading.Event(), []
    real = search.render_transform

    def render(*args, **kwargs):
        rendered.append(1)
        if len(rendered) == 3:
            stop.set()
        return real(*args, **kwargs)

    monkeypatch.setattr(search, "render_transform", render)
    transcript = json.loads((VOICES / "transcripts.json").read_text())["hopper"]
    with stoppable(stop), pytest.raises(RunStopped):
        fitting.fitted_transform(VOICES / "hopper.wav", transcript, [VOICES / "collins.wav"], "joe")
    assert len(rendered) == 3
    assert list((tmp_path / "cache").rglob("*.fit.json")) == [] and fitting._MEMO == {}


def test_a_real_fit_stopped_while_it_analyses_renders_nothing(monkeypatch, tmp_path):
    """The Ctrl-C comes while the fit analyses the reference (seconds before its search starts): the fit ends
    at the step's end, before any candidate."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(fitting, "_MEMO", {})
    stop, rendered, analysed = threading.Event(), [], []
    real = fitting.analyse_reference

    def analyse(*args, **kwargs):
        stop.set()
        analysed.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(fitting, "analyse_reference", analyse)
    monkeypatch.setattr(search, "render_transform", lambda *a, **k: rendered.append(1))
    transcript = json.loads((VOICES / "transcripts.json").read_text())["hopper"]
    with stoppable(stop), pytest.raises(RunStopped):
        fitting.fitted_transform(VOICES / "hopper.wav", transcript, [VOICES / "collins.wav"], "joe")
    assert analysed == [1] and rendered == [] and list((tmp_path / "cache").rglob("*.fit.json")) == []


def test_the_speak_node_runs_the_backend_within_the_runs_stop(tmp_path):
    """A backend whose line takes a fit: the run's Ctrl-C arrives mid-fit; the line stops and no cache entry
    is published (the next run speaks it afresh)."""
    stop = threading.Event()
    calls = []

    class Fitting:
        name, version = "fake", "1"

        def synthesize(self, text, character, knobs, out_path, parenthetical, sample_rate, others=()):
            for i in range(100):
                check_stopped()
                calls.append(i)
                if i == 4:
                    stop.set()
            Path(out_path).write_bytes(b"RIFF")
            return SpeechResult(Path(out_path), 1.0, sample_rate, [], [], {})

    character = SimpleNamespace(id="hopper", voice=SimpleNamespace(reference=VOICES / "hopper.wav",
                                                                   transcript="words", base=None))
    ctx = SimpleNamespace(speech=Fitting(), stop=stop, cache=Cache(tmp_path / "cache"),
                          config=SimpleNamespace(sample_rate=24000),
                          project=SimpleNamespace(cast=SimpleNamespace(characters=[character],
                                                                       by_id=lambda cid: character)))
    seg = SimpleNamespace(speaker="hopper", text="The relays are fine.", parenthetical=None)
    with pytest.raises(RunStopped):
        synthesize_line(ctx, seg, SpeechKnobs())
    assert calls == [0, 1, 2, 3, 4] and [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_the_style_search_stops_at_its_next_step():
    from tools.speech import style_search

    stop, scored = threading.Event(), []

    def score(style) -> float:
        scored.append(1)
        if len(scored) == 5:
            stop.set()
        return float(len(scored))

    with stoppable(stop), pytest.raises(RunStopped):
        style_search.search_style("jf_alpha", score, lambda style: True)
    assert len(scored) == 5 < style_search.EVALUATIONS
    scored.clear()
    assert style_search.search_style("jf_alpha", score, lambda style: True, evaluations=8)[1] == 9.0  # no stop


def test_the_kokoro_choice_stops_before_its_next_candidate(monkeypatch):
    """`bases._score_all` (the kokoro backend's choice: joe, five packs, each with pitch, a searched style)
    checks before judging each candidate; models stand in."""
    import numpy as np

    from tools.hearing import recogniser
    from tools.speech import bases

    stop, judged = threading.Event(), []
    monkeypatch.setattr(bases, "_joe", lambda *a: ([np.zeros(2400, np.float32)] * 2, 24000))
    def heard(audio, sr):
        judged.append(1)
        stop.set()
        assert len(judged) <= 2, "a candidate judged after the stop"
        return [0.5]

    monkeypatch.setattr(bases.speaker, "Listener", lambda refs: SimpleNamespace(similarities=heard))
    monkeypatch.setattr(recogniser, "load_whisper", lambda: None)
    monkeypatch.setattr(recogniser, "mean_log_probs", lambda *a: [0.0])
    with stoppable(stop), pytest.raises(RunStopped):
        bases._score_all(VOICES / "hopper.wav", "words", ())
    assert len(judged) == 2  # joe's two scoring sentences, then no other candidate
