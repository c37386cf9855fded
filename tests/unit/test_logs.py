"""`compose report`: the per-shot table and one shot's history read from a real retries.jsonl."""
import io
import json

import pytest
from rich.console import Console

from orchestrator.report.records import kept_attempt, knob_changes, load_records
from orchestrator.report.terminal import print_report
from orchestrator.retry import plan_retry, quality, verdict
from tools.base import Score, SpeechKnobs, ToolError, VideoKnobs


def _record(shot, attempt, scores, speech, video, budget=3):
    passed = all(s.passed for s in scores)
    v = verdict(passed, attempt, exhausted=attempt >= budget)
    _, _, changes, reason = plan_retry(scores, speech, video, attempt, take_noise=0.3, audio_guidance=None)
    return {
        "shot": shot, "attempt": attempt,
        "backends": {"speech": "piper", "video": "animatic"},
        "speech_knobs": speech.as_dict(), "video_knobs": video.as_dict(), "seed": 0,
        "scores": [s.as_dict() for s in scores], "passed": passed, "quality": quality(scores),
        "verdict": v, "reason": reason, "changes": changes, "seconds": 1.5,
        "clip": f"shots/{shot}/attempt-{attempt}/clip.mp4",
    }


def _console():
    buf = io.StringIO()
    return Console(file=buf, width=200, force_terminal=False, color_system=None), buf


@pytest.fixture
def out_dir(tmp_path):
    """Two shots written the way the decide node does: one retried after an 8-frame offset."""
    bad = Score("lipsync.offset[hopper]", 8.0, 1.0, False, {"av_offset": 8})
    good = Score("lipsync.offset[hopper]", 0.0, 1.0, False, {"av_offset": 0})
    wer = Score("wer[sc01_l02]", 0.1, 0.35, False)
    speech, video = SpeechKnobs(), VideoKnobs()
    recs = [_record("sc01_sh01", 1, [good, wer], speech, video)]
    first = _record("sc01_sh02", 1, [bad, wer], speech, video)
    s2, v2, _, _ = plan_retry([bad, wer], speech, video, 1, take_noise=0.3, audio_guidance=None)
    recs += [first, _record("sc01_sh02", 2, [good, wer], s2, v2)]
    lines = [json.dumps(r) for r in recs]
    lines.insert(1, '{"shot": "sc01_sh0')  # a run killed mid-write
    (tmp_path / "retries.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_overview_lists_every_shot_with_verdict(out_dir):
    console, buf = _console()
    print_report(out_dir, console)
    text = buf.getvalue()
    assert "sc01_sh01" in text and "sc01_sh02" in text
    assert "accepted_after_retry" in text and "accepted " in text
    assert "unreadable record skipped" in text and "retries.jsonl:2" in text


def test_a_narrow_terminal_folds_the_scores_not_the_verdict(out_dir):
    buf = io.StringIO()
    print_report(out_dir, Console(file=buf, width=80, force_terminal=False, color_system=None))
    row = next(line for line in buf.getvalue().splitlines() if "sc01_sh02" in line)
    assert "accepted_after_retry" in row


def test_shot_history_shows_both_attempts_changes_and_reason(out_dir):
    console, buf = _console()
    print_report(out_dir, console, shot_id="sc01_sh02")
    text = buf.getvalue()
    assert "attempt 1" in text and "attempt 2" in text
    assert "FAIL" in text and "lipsync.offset[hopper]" in text
    assert "video.offset_frames 0 -> -8" in text
    assert "re-aligning" in text  # the reason recorded with attempt 1


def test_unknown_shot_and_missing_log_name_the_fix(out_dir, tmp_path_factory):
    console, _ = _console()
    with pytest.raises(ToolError) as err:
        print_report(out_dir, console, shot_id="sc09_sh09")
    assert "sc01_sh02" in err.value.fix
    with pytest.raises(ToolError):
        print_report(tmp_path_factory.mktemp("empty"), console)


def test_kept_attempt_is_best_quality_when_none_accepted(out_dir):
    recs = load_records(out_dir / "retries.jsonl")["sc01_sh02"]
    assert kept_attempt(recs)["attempt"] == 2
    failed = [dict(r, verdict="retry") for r in recs]
    failed[0]["quality"], failed[1]["quality"] = 0.9, 0.2
    assert kept_attempt(failed)["attempt"] == 1
    assert knob_changes(recs[0], recs[1]) == {"video.offset_frames": [0, -8]}


def test_the_overview_points_doubted_voices_to_compose_voices(tmp_path):
    """A best-effort shot whose kept attempt fails a speaker score names that voice and the command to hear
    it; a speaker failure that a retry fixed, or a best-effort shot failing only on words, names none."""
    voice = Score("speaker.dvector_margin[sc01_l02]", -0.2, 0.0011, True, {"speaker": "hopper"})
    fixed = Score("speaker.similarity[sc01_l03]", 0.5, 0.70, True, {"speaker": "collins"})
    words = Score("wer[sc01_l04]", 0.9, 0.6, False)
    ok = Score("speaker.similarity[sc01_l03]", 0.8, 0.70, True, {"speaker": "collins"})
    speech, video = SpeechKnobs(), VideoKnobs()
    recs = [_record("sc01_sh02", k, [voice], speech, video) for k in (1, 2, 3)]
    recs += [_record("sc01_sh03", 1, [fixed], speech, video), _record("sc01_sh03", 2, [ok], speech, video)]
    recs += [_record("sc01_sh04", k, [words], speech, video) for k in (1, 2, 3)]
    assert [r["verdict"] for r in recs] == ["retry", "retry", "best_effort", "retry", "accepted_after_retry",
                                            "retry", "retry", "best_effort"]
    (tmp_path / "retries.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    console, buf = _console()
    print_report(tmp_path, console)
    text = buf.getvalue()
    assert "voices under the speaker check in best-effort shots: hopper; hear them with `compose voices" in text
    (tmp_path / "retries.jsonl").write_text("\n".join(json.dumps(r) for r in recs[3:]) + "\n")
    console, buf = _console()
    print_report(tmp_path, console)
    assert "compose voices" not in buf.getvalue()
