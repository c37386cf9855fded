"""`make demo`'s film, checked from the decoded file: codecs, frame-exact length, speech placement,
subtitles, timeline, retry log and the report command."""
from __future__ import annotations

import json
import re
import shutil

import av
import numpy as np
import pytest

from orchestrator.cli import main
from orchestrator.report.records import kept_attempt
from tests.fixtures.pipeline_kit import EXAMPLE, html_attempt_rows, record_row, records
from tools.media.audio import read_audio

FPS, SR = 25, 24000


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    shutil.copytree(EXAMPLE, folder / "orbit")
    assert main([str(folder / "orbit" / "script.yaml"), "--out", str(folder / "out"), "--quiet"]) == 0
    run = folder / "out" / "orbit-cat"
    return run, json.loads((run / "plan.json").read_text())


def test_codecs_and_length_equal_the_planned_shots(film):
    run, plan = film
    with av.open(str(run / "film.mp4")) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.codec_context.name, v.codec_context.pix_fmt, a.codec_context.name) == ("h264", "yuv420p", "aac")
        assert v.average_rate == FPS
        frames = sum(1 for _ in c.decode(video=0))
    planned = sum(s["duration"] for s in plan["shots"])
    assert abs(frames - planned * FPS) <= len(plan["shots"])


def test_speech_where_the_plan_places_lines_and_silence_elsewhere(film):
    run, plan = film
    audio = read_audio(run / "film.mp4", SR)
    hop = SR // FPS
    rms = np.sqrt(np.mean(audio[: len(audio) // hop * hop].reshape(-1, hop) ** 2, axis=1))
    inside = np.zeros(len(rms), bool)
    near = np.zeros(len(rms), bool)
    t0 = 0.0
    for shot in plan["shots"]:
        for seg in shot["speech"]:
            s, e = t0 + seg["start"], t0 + seg["start"] + seg["duration"]
            inside[int(s * FPS) + 2 : int(e * FPS) - 2] = True
            near[max(0, int(s * FPS) - 3) : int(e * FPS) + 4] = True
        t0 += shot["duration"]
    assert inside.sum() > 5 * FPS
    speech, silence = np.mean(rms[inside]), np.median(rms[~near])
    assert speech > 30 * max(silence, 1e-5), (speech, silence)
    # Each line individually has speech energy.
    t0 = 0.0
    for shot in plan["shots"]:
        for seg in shot["speech"]:
            s = int((t0 + seg["start"]) * FPS)
            assert rms[s : s + int(seg["duration"] * FPS)].max() > 0.02, seg["line_id"]
        t0 += shot["duration"]


def test_subtitles_timeline_and_retry_log(film):
    run, plan = film
    lines = [seg for s in plan["shots"] for seg in s["speech"]]
    srt = (run / "film.srt").read_text()
    assert srt.count(" --> ") == len(lines) == 9
    for seg in lines:
        assert seg["text"] in srt
    import opentimelineio as otio

    tl = otio.adapters.read_from_file(str(run / "film.otio"))
    assert len(tl.video_tracks()[0]) == len(plan["shots"])
    recs = records(run)
    assert {r["shot"] for r in recs} == {s["id"] for s in plan["shots"]}
    for r in recs:
        assert {"attempt", "backends", "speech_knobs", "video_knobs", "seed", "scores", "verdict", "reason",
                "seconds"} <= set(r)
        assert r["verdict"] in ("retry", "accepted", "accepted_after_retry", "best_effort")
    spoken = [r for r in recs if any(s["name"].startswith("lipsync") for s in r["scores"])]
    assert spoken, "the evaluators must score the shots with speech"
    assert (run / "report.html").exists() and (run / "contact_sheet.png").exists()


def test_report_command_and_report_html_show_the_retry_log(film, capsys):
    """`compose report` has one row per planned shot with its attempts, final verdict and kept
    attempt; `--shot` lists that shot's attempts; report.html has one row per attempt of
    retries.jsonl with the same verdict, quality, failing scores and reason, and what it links exists."""
    run, plan = film
    recs = records(run)
    by_shot: dict[str, list[dict]] = {}
    for r in recs:
        by_shot.setdefault(r["shot"], []).append(r)
    capsys.readouterr()
    assert main(["report", str(run)]) == 0
    shown = capsys.readouterr()
    rows = {}
    for line in (shown.out + shown.err).splitlines():
        cells = [c.strip() for c in line.split("│") if c.strip()]
        if cells and cells[0] in by_shot:
            rows[cells[0]] = cells[1:4]
    assert list(rows) == [s["id"] for s in plan["shots"]]
    for sid, recs_of in by_shot.items():
        assert rows[sid] == [str(len(recs_of)), recs_of[-1]["verdict"], str(kept_attempt(recs_of)["attempt"])]
    shot = plan["shots"][1]["id"]
    assert main(["report", str(run), "--shot", shot]) == 0
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert f"{shot}: {len(by_shot[shot])} attempt(s), kept attempt {kept_attempt(by_shot[shot])['attempt']}" in text
    for r in by_shot[shot]:
        assert f"attempt {r['attempt']} - {r['verdict']}" in text
        for s in r["scores"]:
            assert s["name"] in text
    assert main(["report", str(run.parent / "missing")]) == 2
    doc = (run / "report.html").read_text()
    assert html_attempt_rows(doc) == [record_row(r) for r in recs]
    assert 'src="contact_sheet.png"' in doc
    for target in re.findall(r'(?:href|src)="([^":]+)"', doc):
        assert (run / target).is_file(), target


def test_over_shoulder_listener_is_not_judged_for_likeness(film):
    run, plan = film
    ots = {s["id"]: s for s in plan["shots"] if s["framing"] == "over-shoulder"}
    assert ots
    for r in records(run):
        if r["shot"] in ots:
            judged = {s["name"].split("[")[1].rstrip("]") for s in r["scores"] if s["name"].startswith("identity")}
            assert judged == {ots[r["shot"]]["focus"]}


def test_contact_sheet_command_uses_the_kept_attempts(film, tmp_path):
    import numpy as np
    from PIL import Image

    run, plan = film
    out = tmp_path / "sheet.png"
    assert main(["contact-sheet", str(run), "--output", str(out)]) == 0
    # The same clips as the sheet the run wrote from the film's chosen attempts.
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(run / "contact_sheet.png")))
    assert main(["contact-sheet", str(run.parent / "missing")]) == 2
