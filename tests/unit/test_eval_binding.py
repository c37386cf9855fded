"""binding on real animatic clips: the speaker's mouth moves most; swapped speakers fail."""
from tests.fixtures.evalkit import controls  # noqa: F401 (a fixture)
from tools.evaluators.binding import create


def test_speaker_moves_most_in_every_line(controls):
    scores = create().evaluate(controls["positive"])
    assert [s.name for s in scores] == ["binding[sc01_l03]", "binding[sc01_l04]"]
    for s in scores:
        assert s.passed and s.value > 0.8, (s.name, s.value, s.details)


def test_wrong_mouth_moving_fails_every_line(controls):
    scores = create().evaluate(controls["swap"])
    assert len(scores) == 2
    for s in scores:
        assert not s.passed and s.value < 0.2
        assert s.details["others_moving_most"]  # names who moved instead


def test_late_mouths_still_bind_to_the_speaker(controls):
    # An offset is lipsync's failure, not binding's: the right mouth still moves.
    scores = create().evaluate(controls["offset4"])
    assert all(s.passed for s in scores)


def test_evaluators_asking_at_once_share_one_decode(controls, monkeypatch):
    """A shot's evaluators run on two threads: when they ask for the clip's signals at once, one decodes it
    and the others wait for that decode (three decodes before); the memo keeps the last KEEP_SIGNALS clips."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from tools.evaluators import signals

    decoded, gate = [], threading.Barrier(3)
    decode = signals._decode

    def counted(clip, masks):
        decoded.append(clip)
        return decode(clip, masks)

    monkeypatch.setattr(signals, "_decode", counted)
    monkeypatch.setattr(signals, "_SIGNALS", {})
    attempts = [controls[name] for name in ("positive", "offset4", "offset8", "swap", "silent")]

    def ask(attempt):
        gate.wait(timeout=30)  # all three at the memo together
        return signals.attempt_signals(attempt)

    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(ask, [attempts[0]] * 3))
    assert len(decoded) == 1 and got[0] is got[1] is got[2]
    for attempt in attempts[1:]:
        signals.attempt_signals(attempt)
    assert len(decoded) == 5 and len(signals._SIGNALS) == signals.KEEP_SIGNALS
    signals.attempt_signals(attempts[1])  # kept (the oldest, asked for again: now the newest): no decode
    signals.attempt_signals(attempts[0])  # gone: decoded again, and the least recently asked for goes
    signals.attempt_signals(attempts[1])
    assert len(decoded) == 6
    signals.attempt_signals(attempts[2])  # the one that went
    assert len(decoded) == 7
