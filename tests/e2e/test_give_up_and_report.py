"""A shot that uses up its attempts keeps its BEST attempt (not its last) in the film, the retry log,
`compose report`, report.html and manifest.json; the report files are checked against the run.

The mini project runs with a fault-injecting speech backend (the 'relays' line gets quieter or louder
with the speech seed) and a level probe evaluator that measures the loudness of the rendered clip's
decoded audio for that line's shot against a bar no attempt clears. Retries change the seeds (the
policy's move for an unknown score family), so attempt 2 (seed 1) is the loudest, hence the best.
"""
from __future__ import annotations

import base64
import copy
import io
import json
import platform
import re

import numpy as np
import pytest
from PIL import Image

from orchestrator.cli import main
from orchestrator.report.records import kept_attempt
from orchestrator.store import digest_file
from tests.fixtures.pipeline_kit import (
    MINI_SCRIPT,
    cache_entries,
    compose,
    html_attempt_rows,
    manifest,
    record_row,
    records,
    video_frames,
    write_project,
)
from tools import registry
from tools.base import Score
from tools.media.audio import read_audio
from tools.speech import piper

SHOT = "sc01_sh02"  # the shot of the 'relays' line
GAIN_BY_SEED = {0: 0.1, 1: 0.6, 2: 0.25}  # attempt k speaks with seed k-1: attempt 2 is the loudest
FPS, SR = 25, 24000
KEY_ENV = "CASCADE_MANIFEST_TEST_KEY"
CANARY_KEY = "sk-canary-manifest-0123456789"
URL_PASSWORD = "hunter2-url-password"


class FadingVoice(piper.PiperSynthesizer):
    """Piper, with the 'relays' line scaled by a gain that depends on the speech seed."""

    name = "fading-voice"

    def synthesize(self, text, character, knobs, out_path, parenthetical=None, sample_rate=24000, others=()):
        res = super().synthesize(text, character, knobs, out_path, parenthetical, sample_rate, others)
        if "relays" in text:
            from tools.media.audio import write_wav

            write_wav(out_path, read_audio(out_path, sample_rate) * GAIN_BY_SEED[knobs.seed], sample_rate)
        return res


class LevelProbe:
    """Evaluator: RMS of the rendered clip's decoded audio, for shots with a 'relays' line; the bar
    (1.0, full scale) is never reached, so that shot always fails and its attempts run out."""

    name = "level_probe"
    version = "1"
    thresholds = {"level": 1.0}

    def evaluate(self, attempt):
        if not any("relays" in ln.text for ln in attempt.audio.lines):
            return []
        rms = float(np.sqrt(np.mean(read_audio(attempt.video.clip_path, 16000) ** 2)))
        return [Score(f"level[{attempt.shot.id}]", rms, 1.0)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    registry.register("speech", FadingVoice.name, FadingVoice)
    registry.register("evaluator", LevelProbe.name, LevelProbe)
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, CANARY_KEY)  # set, as a writer's shell would have it; the rule planner never reads it
    try:
        script = copy.deepcopy(MINI_SCRIPT)
        script["render"].update(speech=FadingVoice.name, evaluators=[LevelProbe.name], max_attempts=3,
                                llm={"base_url": f"https://writer:{URL_PASSWORD}@llm.example/v1",
                                     "api_key_env": KEY_ENV})
        folder = tmp_path_factory.mktemp("give-up")
        path = write_project(folder / "proj", script)
        assert compose(path, "--out", folder / "out") == 0
        yield folder / "out" / "mini"
    finally:
        mp.undo()
        registry.SPEECH.pop(FadingVoice.name)
        registry.EVALUATORS.pop(LevelProbe.name)


def _shot_spans(run) -> dict[str, tuple[float, float]]:
    """Film start and end (seconds) of every shot, from the final plan.json."""
    spans, t = {}, 0.0
    for s in json.loads((run / "plan.json").read_text())["shots"]:
        spans[s["id"]] = (t, t + s["duration"])
        t += s["duration"]
    return spans


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def test_exhausted_shot_logs_three_attempts_and_keeps_the_best(run):
    recs = [r for r in records(run) if r["shot"] == SHOT]
    assert [r["attempt"] for r in recs] == [1, 2, 3]
    assert [r["verdict"] for r in recs] == ["retry", "retry", "best_effort"]
    assert [r["speech_knobs"]["seed"] for r in recs] == [0, 1, 2]
    levels = [r["scores"][0]["value"] for r in recs]
    assert levels[1] > 2 * levels[2] > 2 * levels[0] > 0  # measured: the gains 0.6 > 0.25 > 0.1
    assert max(recs, key=lambda r: r["quality"])["attempt"] == 2
    assert "kept attempt 2" in recs[-1]["reason"] and "level[sc01_sh02]" in recs[-1]["reason"]
    # The other shots pass at once: only the faulty line's shot spent attempts.
    others = [r for r in records(run) if r["shot"] != SHOT]
    assert [r["verdict"] for r in others] == ["accepted"] * 3
    m = manifest(run)["shots"][SHOT]
    assert (m["attempts"], m["chosen_attempt"], m["passed"]) == (3, 2, False)
    attempts = run / "shots" / SHOT
    assert m["clip_sha256"] == digest_file(attempts / "attempt-2" / "clip.mp4")
    assert m["clip_sha256"] != digest_file(attempts / "attempt-3" / "clip.mp4")


def test_film_frames_and_audio_of_the_shot_come_from_the_kept_attempt(run):
    spans = _shot_spans(run)
    start, end = spans[SHOT]
    film = video_frames(run / "film.mp4")
    shown = film[round(start * FPS):round(end * FPS)]
    attempts = run / "shots" / SHOT
    kept, last = video_frames(attempts / "attempt-2" / "clip.mp4"), video_frames(attempts / "attempt-3" / "clip.mp4")
    assert len(shown) == len(kept) == len(last)
    assert not all(np.array_equal(a, b) for a, b in zip(kept, last))  # the attempts differ (video seed)
    assert all(np.array_equal(a, b) for a, b in zip(shown, kept))  # the film shows attempt 2, frame for frame
    # Audio: the film mix is one gain for the whole film, so the level of this shot against the next
    # shot (accepted, at full level) is the kept attempt's level against that shot's.
    audio = read_audio(run / "film.mp4", SR)
    nxt = "sc01_sh03"
    in_film = _rms(audio[int(start * SR):int(end * SR)]) / _rms(audio[int(spans[nxt][0] * SR):int(spans[nxt][1] * SR)])
    reference = _rms(read_audio(run / "shots" / nxt / "attempt-1" / "shot.wav", SR))
    ratio = {k: _rms(read_audio(attempts / f"attempt-{k}" / "shot.wav", SR)) / reference for k in (1, 2, 3)}
    assert in_film == pytest.approx(ratio[2], rel=0.1), (in_film, ratio)
    assert abs(in_film - ratio[3]) > 0.3 * ratio[2]


def test_report_command_shows_the_kept_attempt(run, capsys):
    capsys.readouterr()
    assert main(["report", str(run), "--shot", SHOT]) == 0
    text = capsys.readouterr()
    text = text.out + text.err
    assert f"{SHOT}: 3 attempt(s), kept attempt 2" in text
    for k, verdict in ((1, "retry"), (2, "retry"), (3, "best_effort")):
        assert f"attempt {k} - {verdict}" in text
    assert "speech.seed 0 -> 1" in text and "speech.seed 1 -> 2" in text
    assert "level[sc01_sh02]" in text and "FAIL" in text
    assert main(["report", str(run)]) == 0
    overview = capsys.readouterr()
    row = next(line for line in (overview.out + overview.err).splitlines() if SHOT in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert cells[:4] == [SHOT, "3", "best_effort", "2"]  # shot, attempts, verdict, kept


def test_contact_sheet_is_drawn_from_the_kept_attempts(run, tmp_path):
    from tools.media.contact_sheet import write_contact_sheet

    kept = {sid: kept_attempt([r for r in records(run) if r["shot"] == sid])["attempt"] for sid in manifest(run)["shots"]}
    assert kept[SHOT] == 2
    clips = [(sid, run / "shots" / sid / f"attempt-{kept[sid]}" / "clip.mp4") for sid in _shot_spans(run)]
    expected = write_contact_sheet(clips, tmp_path / "expected.png")
    assert np.array_equal(np.asarray(Image.open(run / "contact_sheet.png")), np.asarray(Image.open(expected)))
    clips[1] = (SHOT, run / "shots" / SHOT / "attempt-3" / "clip.mp4")
    last = write_contact_sheet(clips, tmp_path / "last.png")
    assert not np.array_equal(np.asarray(Image.open(run / "contact_sheet.png")), np.asarray(Image.open(last)))


def test_report_html_has_a_row_per_attempt_matching_the_retry_log(run):
    doc = (run / "report.html").read_text()
    recs = records(run)
    assert len(recs) == 6  # 1 + 3 + 1 + 1 attempts
    assert html_attempt_rows(doc) == [record_row(r) for r in recs]
    # Everything the page links to or shows is there.
    for target in re.findall(r'(?:href|src)="([^":]+)"', doc):
        assert (run / target).is_file(), target
    assert 'src="contact_sheet.png"' in doc
    plot = re.search(r'src="data:image/png;base64,([^"]+)"', doc)
    assert plot, "the score plot is embedded"
    image = Image.open(io.BytesIO(base64.b64decode(plot.group(1))))
    assert image.size[0] > 100 and image.size[1] > 100


def test_manifest_outputs_shots_tools_and_cache_counts(run):
    m = manifest(run)
    for name in ("film.mp4", "film.srt", "film.otio", "plan.json"):
        assert m["outputs"][name] == digest_file(run / name), name
    plan = json.loads((run / "plan.json").read_text())
    assert set(m["shots"]) == {s["id"] for s in plan["shots"]}
    by_shot = {}
    for r in records(run):
        by_shot.setdefault(r["shot"], []).append(r)
    for sid, entry in m["shots"].items():
        kept = kept_attempt(by_shot[sid])
        assert entry["attempts"] == len(by_shot[sid]) and entry["chosen_attempt"] == kept["attempt"]
        assert entry["passed"] == kept["passed"]
        assert entry["clip_sha256"] == digest_file(run / kept["clip"])
    assert m["tools"] == {"speech": ["fading-voice", FadingVoice.version], "video": ["animatic", m["tools"]["video"][1]]}
    assert m["evaluators"] == [LevelProbe.name]
    assert m["versions"]["python"] == platform.python_version() and m["versions"]["pydantic"]
    assert m["config"]["speech"] == "fading-voice" and m["config"]["max_attempts"] == 3
    assert (m["config"]["width"], m["config"]["height"]) == (320, 180)
    assert m["planner_usage"] == {}  # the rule planner spends nothing
    # Cache: every speech line, clip and score set of every attempt was asked for once, all built fresh.
    lines = {s["id"]: len(s["speech"]) for s in plan["shots"]}
    asked = sum(len(by_shot[sid]) * (lines[sid] + 2) for sid in lines)
    assert m["cache"] == {"hits": 0, "misses": asked, "rebuilt": 0}
    assert len(cache_entries(run)) == asked


def test_manifest_loudness_is_the_films_measured_loudness(run):
    import pyloudnorm

    loud = manifest(run)["loudness"]
    assert loud["target_lufs"] == -16.0
    measured = pyloudnorm.Meter(SR).integrated_loudness(read_audio(run / "film.mp4", SR).astype(np.float64))
    assert measured == pytest.approx(loud["measured_lufs"], abs=0.5)


def test_manifest_holds_no_api_key(run):
    text = (run / "manifest.json").read_text()
    assert CANARY_KEY not in text
    assert manifest(run)["config"]["llm"]["api_key_env"] == KEY_ENV  # the variable's name, not its value


def test_manifest_holds_no_password_from_the_llm_url(run):
    text = (run / "manifest.json").read_text()
    assert "llm.example/v1" in text  # the URL is recorded ...
    assert URL_PASSWORD not in text  # ... without its credentials
