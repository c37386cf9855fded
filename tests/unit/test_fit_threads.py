"""The candidate bases of a voice choice are fitted FIT_THREADS at a time, and the choice is the one a
one-at-a-time fit makes: the scores keep the candidates' order (joe first, so joe keeps a tie), two fits
are in flight at once, a failing fit stops the choice with its own error, and cache entries written by
several threads at once stay whole. The choice itself: a Borda count of its two judges among the bases
not both heard as another of the cast, against ranks and margins computed independently."""
import json
import threading
import time
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from tools.media.audio import write_wav
from tools.speech import fitting, packs, search
from tools.speech.world import WorldTransform


def _fake_cast(monkeypatch, score_of: dict, fail: str | None = None, campplus_of: dict | None = None):
    """`_choose` over made-up fits: each base's "speech" is its name, heard by the fitting judge as
    `score_of[base]` and by CAM++ as `campplus_of[base]` (0 for every base when not given): one number,
    the similarity to the character (a cast of one), or a list (the character's, then the others');
    records how many fits were running at once."""
    running, peak, lock = [0], [0], threading.Lock()

    def fitted_transform(reference, transcript, others, base):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)  # long enough for a second worker to start its own fit
        with lock:
            running[0] -= 1
        if base == fail:
            raise RuntimeError(f"fit of {base} failed")
        return WorldTransform(length_scale=1.0)

    def heard(of: dict):
        return SimpleNamespace(similarities=lambda base, sr: list(np.atleast_1d(of.get(base, 0.0))))

    def campplus(references, judge):
        assert judge == "campplus" and fitting.CHOICE_JUDGES == ("resemblyzer", "campplus")
        return heard(campplus_of or {})

    monkeypatch.setattr(fitting, "fitted_transform", fitted_transform)
    monkeypatch.setattr(fitting, "fitted_speech", lambda base, tf, sentences: ([base], 16000))
    monkeypatch.setattr(packs, "pack_candidates", lambda listener: ["kokoro:af_river", "kokoro:am_puck"])
    monkeypatch.setattr(search, "fitting_listener", lambda reference, others: heard(score_of))
    monkeypatch.setattr(fitting.speaker, "Listener", campplus)
    return peak


def test_bases_are_fitted_two_at_a_time_and_scored_in_candidate_order(monkeypatch, tmp_path):
    scores = {"joe": 0.70, "heart": 0.60, "kokoro:af_river": 0.80, "kokoro:am_puck": 0.75}
    peak = _fake_cast(monkeypatch, scores)
    choice = fitting._choose(tmp_path / "ref.wav", "words", ())
    assert list(choice.scores) == ["joe", "heart", "kokoro:af_river", "kokoro:am_puck"]
    assert choice.by_judge["resemblyzer"] == scores and choice.base == "kokoro:af_river"
    assert peak[0] == fitting.FIT_THREADS == 2


def test_the_choice_counts_each_judges_ranking_alike(monkeypatch, tmp_path):
    """Each of the two judges gives a base a point per other base it scores higher (a Borda count): heart,
    first by the fitting judge and second by CAM++, wins, where a sum of the raw scores would take
    am_puck for CAM++'s wider spread alone. Each judge's scores are kept; the points match ranks
    computed independently."""
    resemblyzer = {"joe": 0.42, "heart": 0.53, "kokoro:af_river": 0.50, "kokoro:am_puck": 0.30}
    campplus = {"joe": 0.51, "heart": 0.38, "kokoro:af_river": 0.20, "kokoro:am_puck": 0.70}
    _fake_cast(monkeypatch, resemblyzer, campplus_of=campplus)
    choice = fitting._choose(tmp_path / "ref.wav", "words", ())
    assert choice.by_judge == {"resemblyzer": resemblyzer, "campplus": campplus}
    bases = list(resemblyzer)
    ranks = sum(np.argsort(np.argsort([judge[b] for b in bases])) for judge in (resemblyzer, campplus))
    assert choice.scores == dict(zip(bases, ranks.tolist())) == {"joe": 3, "heart": 4, "kokoro:af_river": 2,
                                                                  "kokoro:am_puck": 3}
    assert choice.base == "heart" != max(bases, key=lambda b: resemblyzer[b] + campplus[b])
    _fake_cast(monkeypatch, resemblyzer, campplus_of={**campplus, "heart": 0.0})
    assert fitting._choose(tmp_path / "ref.wav", "words", ()).base == "joe"  # every base 3 points: the earliest


def test_a_base_both_judges_hear_as_another_is_set_aside(monkeypatch, tmp_path):
    """A cast of three (the character, then two others): heart would win the count, but both judges hear it
    closer to another of the cast (mean margins below zero), so it is set aside and the count is made
    among the rest; a base only one judge hears as another stays. When every base is heard as another
    by both, the fitting judge's cast score decides. Margins and cast scores are checked by hand."""
    resemblyzer = {"joe": [0.70, 0.60, 0.50], "heart": [0.80, 0.85, 0.40],
                   "kokoro:af_river": [0.72, 0.75, 0.30], "kokoro:am_puck": [0.60, 0.40, 0.55]}
    campplus = {"joe": [0.50, 0.20, 0.30], "heart": [0.60, 0.65, 0.10],
                "kokoro:af_river": [0.55, 0.30, 0.20], "kokoro:am_puck": [0.30, 0.35, 0.10]}
    _fake_cast(monkeypatch, resemblyzer, campplus_of=campplus)
    choice = fitting._choose(tmp_path / "ref.wav", "words", ())
    for judge, of in (("resemblyzer", resemblyzer), ("campplus", campplus)):
        assert choice.margins[judge] == {b: round(s[0] - max(s[1:]), 4) for b, s in of.items()}
        assert choice.by_judge[judge] == {b: round(s[0] - search.CAST_WEIGHT * max(s[1:]), 4) for b, s in of.items()}
    # heart: -0.05 / -0.05, set aside; af_river: -0.03 by the fitting judge but +0.25 by CAM++, kept
    assert choice.scores == {"joe": 3, "heart": None, "kokoro:af_river": 3, "kokoro:am_puck": 0}
    assert choice.base == "joe"  # a tie with af_river: the earlier base
    everyone_else = {b: [s[0], s[0] + 0.1] for b, s in resemblyzer.items()}
    _fake_cast(monkeypatch, everyone_else, campplus_of={b: [0.9 if b == "joe" else 0.3, 0.95] for b in campplus})
    choice = fitting._choose(tmp_path / "ref.wav", "words", ())
    assert set(choice.scores.values()) == {None}
    assert choice.base == "heart"  # resemblyzer's 0.80 - 0.5 x 0.90, though CAM++ would keep joe


def test_a_tie_still_goes_to_the_earlier_base(monkeypatch, tmp_path):
    _fake_cast(monkeypatch, {"joe": 0.7, "heart": 0.7, "kokoro:af_river": 0.7, "kokoro:am_puck": 0.7})
    assert fitting._choose(tmp_path / "ref.wav", "words", ()).base == "joe"


def test_one_at_a_time_when_asked(monkeypatch, tmp_path):
    peak = _fake_cast(monkeypatch, {"joe": 0.7, "heart": 0.6, "kokoro:af_river": 0.5, "kokoro:am_puck": 0.4})
    monkeypatch.setattr(fitting, "FIT_THREADS", 1)
    assert fitting._choose(tmp_path / "ref.wav", "words", ()).base == "joe" and peak[0] == 1


def test_a_failing_fit_stops_the_choice_with_its_error(monkeypatch, tmp_path):
    _fake_cast(monkeypatch, {"joe": 0.7, "heart": 0.6, "kokoro:af_river": 0.5, "kokoro:am_puck": 0.4},
               fail="kokoro:af_river")
    with pytest.raises(RuntimeError, match="fit of kokoro:af_river failed"):
        fitting._choose(tmp_path / "ref.wav", "words", ())


def test_cache_entries_written_by_many_threads_at_once_stay_whole(tmp_path):
    """Two fits of one process may write the same entry (a reference's profile at one rate): every
    write must land whole, with no temporary left behind."""
    path = tmp_path / "entry.json"
    errors, start = [], threading.Barrier(8)

    def write(k: int) -> None:
        start.wait()
        try:
            for i in range(50):
                fitting.write_json(path, {"writer": k, "i": i, "pad": "x" * 2000})
        except OSError as exc:  # a temporary renamed away by another writer
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert errors == []
    assert json.loads(path.read_text())["i"] == 49
    assert [p.name for p in tmp_path.iterdir()] == ["entry.json"]


def test_a_value_asked_for_twice_at_once_is_made_once_and_other_keys_go_on():
    """Two shot workers reaching one character's fit at once: one makes it, the other waits for it;
    a fit of another character runs beside them; a failed make leaves the key to the next asker."""
    from tools.memo import memoised

    memo, made, lock = {}, [], threading.Lock()
    collins_started, hopper_made, saw_hopper = threading.Event(), threading.Event(), []

    def make_collins():
        with lock:
            made.append("collins")
        collins_started.set()
        saw_hopper.append(hopper_made.wait(timeout=5))  # held up behind collins, hopper would never come
        time.sleep(0.2)  # the second asker is at the memo by now
        return "collins's fit"

    def make_hopper():
        with lock:
            made.append("hopper")
        hopper_made.set()
        return "hopper's fit"

    results = {}

    def ask(name: str, key: str, make, after_collins_started: bool) -> None:
        if after_collins_started:
            collins_started.wait(timeout=5)
        results[name] = memoised(memo, key, make)

    threads = [threading.Thread(target=ask, args=a) for a in (
        ("first", "collins", make_collins, False), ("second", "collins", make_collins, True),
        ("other", "hopper", make_hopper, True))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results == {"first": "collins's fit", "second": "collins's fit", "other": "hopper's fit"}
    assert sorted(made) == ["collins", "hopper"] and saw_hopper == [True]  # collins made once, hopper beside it

    def fail():
        raise RuntimeError("no clip")

    with pytest.raises(RuntimeError):
        memoised(memo, "chelsea", fail)
    assert memoised(memo, "chelsea", lambda: "made at last") == "made at last"


def test_a_choice_made_by_other_judges_is_another_cache_entry(monkeypatch, tmp_path):
    """The choice's cache key names its judges and CAM++'s weights: a choice made before CAM++ voted (or by
    another CAM++) is not read back as this one."""
    ref = tmp_path / "ref.wav"
    write_wav(ref, 0.3 * np.sin(np.arange(16000) * 0.05), 16000)
    key = fitting._choice_key(ref, "words", ())
    monkeypatch.setattr(fitting, "CHOICE_JUDGES", ("resemblyzer",))
    alone = fitting._choice_key(ref, "words", ())
    monkeypatch.setattr(fitting, "CHOICE_JUDGES", ("resemblyzer", "campplus"))
    monkeypatch.setitem(fitting.MODELS, "campplus", replace(fitting.MODELS["campplus"], sha256="0" * 64))
    assert len({key, alone, fitting._choice_key(ref, "words", ())}) == 3
