"""`compose voices` says what sounds different since the last audition in the same folder, and why
(`orchestrator.report.since`); the command's own run is checked in tests/e2e/test_example_film.py."""
from __future__ import annotations

import copy
import json

from orchestrator.report.since import read_previous, since_last, voice_changes


def _line(line_id: str, sha: str, passed: bool = True, text: str = "Words.") -> dict:
    return {"line_id": line_id, "text": text, "sha256": sha, "passed": passed}


def _audition(speech: str = "piper") -> dict:
    return {"speech": speech, "characters": [
        {"id": "maren", "base": "am_puck", "pinned": False, "reference_sha256": "r1", "cast_sha256": "c1",
         "lines": [_line("l01", "a"), _line("l03", "b")]},
        {"id": "biscuit", "base": "am_onyx", "pinned": False, "reference_sha256": "r2", "cast_sha256": "c2",
         "lines": [_line("l04", "c", False), _line("l09", "d", False)]}]}


def test_the_same_voices_are_not_reported():
    assert voice_changes(_audition(), _audition()) == {}


def test_a_cast_change_that_moved_a_base_says_how_to_keep_it():
    """Biscuit's base moved when Maren's clip changed (measured: bench/RESULTS.md, twenty-first pass)."""
    now = _audition()
    biscuit = now["characters"][1]
    biscuit.update(base="am_santa", cast_sha256="c2'")
    biscuit["lines"] = [_line("l04", "e", True), _line("l09", "f", False)]
    said = voice_changes(_audition(), now)
    assert list(said) == ["biscuit"]
    assert said["biscuit"] == ["base am_onyx -> am_santa", "2 of 2 lines sound different (l04, l09)",
                               "l04 failed, now passes",
                               "the rest of the cast's clips changed (a voice is fitted away from the others' voices):"
                               " pin `voice.base: am_onyx` to keep the base it had"]
    biscuit["pinned"] = True  # already pinned: no pin to suggest
    assert not voice_changes(_audition(), now)["biscuit"][-1].endswith("to keep the base it had")


def test_each_cause_is_named_first_to_last():
    before, now = _audition(), _audition()
    now["characters"][0]["lines"][0]["sha256"] = "a'"
    assert voice_changes(before, now)["maren"][-1] == ("the clips, the cast and the backend are as they were: the "
                                                        "code or its settings changed")
    now["characters"][0]["pinned"] = True
    assert voice_changes(before, now)["maren"][-1] == "its `voice.base` was pinned"
    now["speech"] = "kokoro"
    assert voice_changes(before, now)["maren"][-1] == "the speech backend changed (piper -> kokoro)"
    now["characters"][0]["cast_sha256"] = "c9"
    assert voice_changes(before, now)["maren"][-1].startswith("the rest of the cast's clips changed (")
    now["characters"][0]["reference_sha256"] = "r9"
    assert voice_changes(before, now)["maren"] == ["1 of 2 lines sound different (l01)", "its reference clip changed"]


def test_new_characters_new_words_and_older_files_are_passed_over():
    before, now = _audition(), _audition()
    now["characters"].append({"id": "edith", "base": "af_jessica", "lines": [_line("l02", "x")]})
    now["characters"][0]["lines"][1].update(text="Other words.", sha256="z")  # its words changed: not compared
    assert voice_changes(before, now) == {}
    old = copy.deepcopy(before)  # an audition from before the digests were kept: only the base is compared
    for c in old["characters"]:
        for k in ("reference_sha256", "cast_sha256"):
            c.pop(k)
        for ln in c["lines"]:
            ln.pop("sha256")
    assert voice_changes(old, now) == {}
    now["characters"][0]["base"] = "heart"
    assert voice_changes(old, now) == {"maren": ["base am_puck -> heart"]}


def test_a_missing_or_damaged_earlier_file_is_no_error(tmp_path, caplog):
    assert read_previous(tmp_path / "voices.json") is None
    (tmp_path / "voices.json").write_text("{not json")
    assert read_previous(tmp_path / "voices.json") is None and "ignoring an unreadable" in caplog.text
    (tmp_path / "voices.json").write_text(json.dumps({"speech": "piper"}))
    assert read_previous(tmp_path / "voices.json") is None
    (tmp_path / "voices.json").write_text(json.dumps({**_audition(), "characters": [*_audition()["characters"], 3]}))
    assert [c["id"] for c in read_previous(tmp_path / "voices.json")["characters"]] == ["maren", "biscuit"]
    broken = {**_audition(), "written": "then"}
    broken["characters"][0]["lines"] = [{"line_id": ["a list"], "text": "x"}]  # unhashable: cannot be compared
    assert since_last(broken, _audition()) is None and "cannot be compared" in caplog.text
    assert since_last(None, _audition()) is None
    assert since_last({**_audition(), "written": "then"}, _audition()) == {"written": "then", "changes": {}}
    edited = _audition()
    edited["characters"][0].update(lines=5, base=[1])  # hand-edited: compared as far as it can be, no error
    assert voice_changes(edited, _audition()) == {"maren": [
        "base [1] -> am_puck",
        "the clips, the cast and the backend are as they were: the code or its settings changed"]}
