"""The candidate bases of a voice choice are fitted FIT_THREADS at a time, and the choice is the one a
one-at-a-time fit makes: the scores keep the candidates' order (joe first, so joe keeps a tie), two fits
are in flight at once, a failing fit stops the choice with its own error, and cache entries written by
several threads at once stay whole."""
import json
import threading
import time
from types import SimpleNamespace

import pytest

from tools.speech import fitting, packs, search
from tools.speech.world import WorldTransform


def _fake_cast(monkeypatch, score_of: dict, fail: str | None = None):
    """`_choose` over made-up fits: each base's "speech" is its name, scored by `score_of`; records how
    many fits were running at once."""
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

    monkeypatch.setattr(fitting, "fitted_transform", fitted_transform)
    monkeypatch.setattr(fitting, "fitted_speech", lambda base, tf, sentences: ([base], 16000))
    monkeypatch.setattr(packs, "pack_candidates", lambda listener: ["kokoro:af_river", "kokoro:am_puck"])
    listener = SimpleNamespace(similarities=lambda base, sr: [score_of[base]])
    monkeypatch.setattr(search, "fitting_listener", lambda reference, others: listener)
    return peak


def test_bases_are_fitted_two_at_a_time_and_scored_in_candidate_order(monkeypatch, tmp_path):
    scores = {"joe": 0.70, "heart": 0.60, "kokoro:af_river": 0.80, "kokoro:am_puck": 0.75}
    peak = _fake_cast(monkeypatch, scores)
    choice = fitting._choose(tmp_path / "ref.wav", "words", ())
    assert list(choice.scores) == ["joe", "heart", "kokoro:af_river", "kokoro:am_puck"]
    assert choice.scores == scores and choice.base == "kokoro:af_river"
    assert peak[0] == fitting.FIT_THREADS == 2


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
    from tools.speech.memo import memoised

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
