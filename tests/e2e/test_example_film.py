"""`make demo`'s film, checked from the decoded file: codecs, frame-exact length, speech placement,
subtitles, timeline, retry log and the report command; and `compose voices` before it."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from orchestrator.cli import main
from orchestrator.inputs.loading import load_project
from orchestrator.report.records import kept_attempt
from tests.fixtures.pipeline_kit import EXAMPLE, html_attempt_rows, record_row, records
from tools.media.audio import read_audio
from tools.media.packaged import EN_PACKS

FPS, SR = 25, 24000


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    shutil.copytree(EXAMPLE, folder / "orbit")
    # A writer's order: hear the voices first (`compose voices`), then render.
    assert main(["voices", str(folder / "orbit" / "script.yaml"), "--out", str(folder / "out"), "--compare",
                 "--quiet"]) == 0
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


def _voices(run) -> dict:
    return json.loads((run / "voices" / "voices.json").read_text())


def test_voices_audition_speaks_each_characters_first_lines_and_judges_them(film):
    """Each speaking character's first two lines in plan order, spoken (real audio of the stated length)
    and judged by both speaker judges and the recogniser against the calibrated thresholds; the example's
    voices all pass, as its shots do."""
    from tools.evaluators.thresholds import thresholds

    run, plan = film
    voices = _voices(run)
    firsts: dict[str, list[str]] = {}
    for shot in plan["shots"]:
        for seg in shot["speech"]:
            if len(firsts.setdefault(seg["speaker"], [])) < 2:
                firsts[seg["speaker"]].append(seg["line_id"])
    assert [c["id"] for c in voices["characters"]] == ["collins", "hopper", "chelsea"] and not voices["silent"]
    limits = thresholds()
    for c in voices["characters"]:
        assert [ln["line_id"] for ln in c["lines"]] == firsts[c["id"]]
        assert c["base"] in ("joe", "heart", *EN_PACKS) and c["passed"] and c["advice"] == []
        file, line, _ = c["where"].rsplit(":", 2)  # the voice's reference in the cast file, for the advice
        assert Path(file).resolve() == (run.parents[1] / "orbit" / "cast.yaml").resolve()
        assert "reference:" in Path(file).read_text().splitlines()[int(line) - 1]
        for ln in c["lines"]:
            audio = read_audio(ln["wav"], SR)
            assert abs(len(audio) / SR - ln["seconds"]) < 0.02 and np.sqrt(np.mean(audio ** 2)) > 0.02
            names = {s["name"].split("[")[0]: s for s in ln["scores"]}
            assert set(names) == {"speaker.similarity", "speaker.margin", "speaker.dvector_similarity",
                                  "speaker.dvector_margin", "wer"}
            for name, s in names.items():
                assert s["threshold"] == limits[name] and s["passed"]


def _page(folder) -> tuple[str, list[str]]:
    """voices.html's text (tags dropped, entities read) and its audio sources."""
    import html as html_lib

    doc = (folder / "voices.html").read_text()
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", doc))), [html_lib.unescape(s) for s in
                                                               re.findall(r'<audio [^>]*src="([^"]+)"', doc)]


def test_voices_html_plays_every_line_beside_its_reference_clip(film):
    """voices.html: one player per reference clip, auditioned line and compared base, each a file beside
    the page (the reference a byte copy of the cast's clip); every line's scores and verdict in the text."""
    run, _ = film
    folder = run / "voices"
    voices = _voices(run)
    text, sources = _page(folder)
    expected = [Path(c["reference_copy"]).name for c in voices["characters"]]
    expected += [Path(x["wav"]).name for c in voices["characters"] for x in c["lines"] + c["bases"]]
    assert sorted(sources) == sorted(expected) and len(sources) == 3 + 6 + sum(len(c["bases"]) for c in
                                                                               voices["characters"])
    assert all((folder / src).is_file() for src in sources)
    for c in voices["characters"]:
        assert (folder / Path(c["reference_copy"]).name).read_bytes() == Path(c["reference"]).read_bytes()
        assert f"{c['id']}: passes" in text
        for ln in c["lines"]:
            assert ln["text"] in text and all(f"{s['value']:.3f}" in text for s in ln["scores"])
        assert f"{c['lines'][0]['line_id']}, base {c['base']} (the fit's choice) {c['lines'][0]['text']}" in text
    # every auditioned line passes; a compared base the fit did not choose may fail (collins's bf_lily does)
    assert all(ln["passed"] for c in voices["characters"] for ln in c["lines"])
    assert text.count("FAIL") == sum(not b["passed"] for c in voices["characters"] for b in c["bases"])


def test_compare_speaks_the_first_line_from_every_base_the_fit_weighed(film):
    """--compare: joe, heart and three or four Kokoro packs per character, the fit's choice first with the
    most points of its count (a base set aside has none); the chosen base pinned speaks the audition's own
    first line, sample for sample, and scores the same; every other base speaks a different voice."""
    run, _ = film
    for c in _voices(run)["characters"]:
        bases = c["bases"]
        names = [b["base"] for b in bases]
        assert names[0] == c["base"] and {"joe", "heart"} <= set(names) and 5 <= len(names) <= 6
        assert [b["chosen"] for b in bases] == [True] + [False] * (len(bases) - 1)
        assert bases[0]["fit_score"] == max(b["fit_score"] for b in bases if b["fit_score"] is not None)
        first = c["lines"][0]
        assert all(b["line_id"] == first["line_id"] and not b["pinned"] for b in bases)
        audio = [read_audio(b["wav"], SR) for b in bases]
        assert np.array_equal(audio[0], read_audio(first["wav"], SR))
        assert [(s["name"], s["value"]) for s in first["scores"]] == \
            [(s["name"].replace("@" + c["base"], ""), s["value"]) for s in bases[0]["scores"]]
        for other in audio[1:]:
            assert len(other) != len(audio[0]) or not np.allclose(other, audio[0], atol=1e-3)


def test_the_render_reuses_the_auditioned_lines(film):
    """The audition spoke the lines as the render's first attempts do: the render found them in its
    cache (its only cache hits on a fresh folder, besides a retry that keeps its line's audio and changes
    only the picture, as a lip-sync re-alignment does) and its attempt-1 speech is the same audio."""
    run, plan = film
    auditioned = {ln["line_id"]: ln["wav"] for c in _voices(run)["characters"] for ln in c["lines"]}
    manifest = json.loads((run / "manifest.json").read_text())
    kept_audio = sum(wav.read_bytes() == (wav.parents[1] / "attempt-1" / wav.name).read_bytes()
                     for wav in run.glob("shots/*/attempt-*/speech-*.wav") if wav.parent.name != "attempt-1")
    assert manifest["cache"]["hits"] == len(auditioned) + kept_audio and len(auditioned) == 6
    for shot in plan["shots"]:
        for seg in shot["speech"]:
            if seg["line_id"] in auditioned:
                rendered = run / "shots" / shot["id"] / "attempt-1" / f"speech-{seg['line_id']}.wav"
                assert np.array_equal(read_audio(rendered, SR), read_audio(auditioned[seg["line_id"]], SR))


def test_one_character_auditioned_again_keeps_the_others_last_hearing(film, tmp_path, capsys):
    """`compose voices --character chelsea` after the full audition (its folder and run cache copied): chelsea
    is heard again (the same lines, from the run's cache: nothing sounds different), collins and hopper are
    kept in voices.json as last heard, marked with when; a second call for collins carries chelsea from the
    first call and hopper still from the full audition; `--line` with words of hopper's last line hears him in
    that line alone."""
    import os
    import time

    run, _ = film
    out = tmp_path / "out"
    for part in ("voices", "cache"):
        shutil.copytree(run / part, out / "orbit-cat" / part)
    script = run.parents[1] / "orbit" / "script.yaml"
    full = _voices(run)
    was = {c["id"]: c for c in full["characters"]}
    heard_at = lambda: time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(  # noqa: E731
        out / "orbit-cat" / "voices" / "voices.json")))
    first = heard_at()
    capsys.readouterr()
    assert main(["voices", str(script), "--out", str(out), "--character", "chelsea", "--json"]) == 0
    now = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in now["characters"]] == [c["id"] for c in full["characters"]]  # the cast's order
    by_id = {c["id"]: c for c in now["characters"]}
    assert by_id["collins"] == {**was["collins"], "carried_from": first}
    assert by_id["hopper"] == {**was["hopper"], "carried_from": first}
    assert "carried_from" not in by_id["chelsea"] and by_id["chelsea"]["passed"]
    assert [ln["sha256"] for ln in by_id["chelsea"]["lines"]] == [ln["sha256"] for ln in was["chelsea"]["lines"]]
    assert now["since_last"]["changes"] == {}
    text, _ = _page(out / "orbit-cat" / "voices")
    assert f"collins: passes (as heard {first}; not auditioned this time)" in text
    assert "chelsea: passes reference clip" in text
    second = heard_at()
    assert main(["voices", str(script), "--out", str(out), "--character", "collins"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"not auditioned now: hopper, chelsea; voices.json keeps their last audition",
                     " ".join(err.split()))
    assert f"next: `compose {script}` to render" in " ".join(err.split())  # collins passes
    again = {c["id"]: c for c in _voices(out / "orbit-cat")["characters"]}
    assert (again["hopper"]["carried_from"], again["chelsea"]["carried_from"]) == (first, second)
    assert "carried_from" not in again["collins"] and again["chelsea"]["lines"] == by_id["chelsea"]["lines"]
    third = heard_at()
    assert main(["voices", str(script), "--out", str(out), "--line", "the cat flies", "--json"]) == 0
    last = {c["id"]: c for c in json.loads(capsys.readouterr().out)["characters"]}
    assert [ln["line_id"] for ln in last["hopper"]["lines"]] == ["sc02_l04"] and last["hopper"]["passed"]
    assert last["hopper"]["lines_named"] == ["sc02_l04"] and "carried_from" not in last["hopper"]
    assert (last["collins"]["carried_from"], last["chelsea"]["carried_from"]) == (third, second)


def test_a_voice_that_is_another_characters_fails_the_audition_and_says_whose(film, capsys):
    """Negative control, through the command: a backend that speaks hopper's lines in collins's fitted
    voice. hopper's lines fail both judges' margins with collins the closer voice, the advice says so
    at hopper's voice in the cast file; collins and chelsea still pass. chelsea's cast entry pins the base
    her fit chose: the same voice, marked pinned."""
    from tools import registry
    from tools.speech.piper import PiperSynthesizer

    run, _ = film
    project = run.parents[1] / "pinned"
    shutil.copytree(run.parents[1] / "orbit", project)
    text = (project / "cast.yaml").read_text()
    ref = "reference: assets/voices/chelsea.wav"
    assert ref in text
    chosen = next(c["base"] for c in _voices(run)["characters"] if c["id"] == "chelsea")
    (project / "cast.yaml").write_text(text.replace(ref, ref + f"\n      base: {chosen}"))
    script = project / "script.yaml"
    cast = load_project(script).cast
    assert cast.by_id("chelsea").voice.base == chosen

    class HopperAsCollins(PiperSynthesizer):
        name = "hopper-as-collins"

        def synthesize(self, text, character, knobs, out_path, parenthetical=None, sample_rate=24000, others=()):
            if character.id == "hopper":  # collins's own fit: the one the film's render made
                character = cast.by_id("collins")
                others = [c.voice.reference for c in cast.characters if c.id != "collins"]
            return super().synthesize(text, character, knobs, out_path, parenthetical, sample_rate, others)

    registry.register("speech", HopperAsCollins.name, HopperAsCollins)
    shutil.copytree(run / "voices", run.parents[1] / "swapped" / "orbit-cat" / "voices")  # an audition before
    try:
        capsys.readouterr()
        assert main(["voices", str(script), "--out", str(run.parents[1] / "swapped"), "--speech", HopperAsCollins.name,
                     "--json"]) == 0
    finally:
        registry.SPEECH.pop(HopperAsCollins.name)
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((run.parents[1] / "swapped" / "orbit-cat" / "voices" / "voices.json").read_text())
    verdicts = {c["id"]: c for c in printed["characters"]}
    assert verdicts["collins"]["passed"] and verdicts["chelsea"]["passed"] and not verdicts["hopper"]["passed"]
    for ln in verdicts["hopper"]["lines"]:
        margins = [s for s in ln["scores"] if "margin" in s["name"]]
        assert len(margins) == 2 and not any(s["passed"] for s in margins)
        assert {s["details"]["closest_other"] for s in margins} == {"collins"}
    said = verdicts["hopper"]["advice"][0]  # (then, as hopper's lines are far from his clip, that too)
    assert "closer to collins's reference than to hopper's own" in said["problem"]
    assert "give hopper and collins" in said["fix"] and "best_effort" in verdicts["hopper"]["if_rendered"]
    for ln in verdicts["hopper"]["lines"]:  # each failing line taken again as a render's retries take it
        assert [t["attempt"] for t in ln["takes"]] == [2, 3] and not any(t["passed"] for t in ln["takes"])
        assert f"{ln['line_id']}: no take of 3 passes" in verdicts["hopper"]["if_rendered"]
        first = read_audio(ln["wav"], SR)
        for t in ln["takes"]:
            assert t["changes"]["speech.seed"][1] == t["attempt"] - 1 and "new take" in t["why"]
            again = read_audio(t["wav"], SR)
            assert len(again) != len(first) or np.abs(again - first).max() > 0.01  # a new take, not the first
    assert verdicts["collins"]["advice"] == verdicts["chelsea"]["advice"] == []
    assert verdicts["collins"]["if_rendered"] is None
    assert [verdicts[c]["pinned"] for c in ("collins", "hopper", "chelsea")] == [False, False, True]
    assert verdicts["chelsea"]["base"] == chosen
    heard = {ln["line_id"]: ln["wav"] for c in _voices(run)["characters"] for ln in c["lines"]}
    for ln in verdicts["chelsea"]["lines"]:
        assert np.array_equal(read_audio(ln["wav"], SR), read_audio(heard[ln["line_id"]], SR))
    assert verdicts["hopper"]["where"] == verdicts["hopper"]["where"].rsplit(":", 2)[0] + ":19:18"
    text, _ = _page(run.parents[1] / "swapped" / "orbit-cat" / "voices")
    assert "hopper: doubtful" in text and "collins: passes" in text and text.count("FAIL") == 2 + 2 * 2  # and takes
    assert text.count("take 2") == text.count("take 3") == 2
    assert said["problem"] in text and said["fix"] in text  # the advice, read back through the page's escaping
    # Since the audition before (the film's, copied in): only hopper sounds different, and the backend is why;
    # chelsea, pinned to the base her fit chose, sounds as she did.
    hopper_lines = [ln["line_id"] for ln in verdicts["hopper"]["lines"]]
    assert printed["since_last"]["changes"] == {"hopper": [
        f"2 of 2 lines sound different ({', '.join(hopper_lines)})",
        *[f"{line_id} passed, now fails" for line_id in hopper_lines],
        f"the speech backend changed (piper -> {HopperAsCollins.name})"]}
    assert "since the last audition here" in text and "the speech backend changed" in text
