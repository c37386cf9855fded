"""A shot whose first attempt is faulty fails its evaluation, is retried with changed knobs, passes,
and the retry log and `compose report` show both attempts with scores and reasons."""
from __future__ import annotations

import copy

import pytest

from orchestrator.cli import main
from tests.fixtures.pipeline_kit import MINI_SCRIPT, records, write_project
from tools import registry
from tools.speech import piper


class WrongVoiceOnFirstTake(piper.PiperSynthesizer):
    """Test-only speech backend: speaks the 'relays' line in Hopper's voice while the seed is 0."""

    name = "wrong-voice-once"

    def synthesize(self, text, character, knobs, out_path, parenthetical=None, sample_rate=24000, others=()):
        if knobs.seed == 0 and "relays" in text:
            character = self.cast.by_id("hopper")  # with hopper's own fit (the render's, away from the rest)
            others = [c.voice.reference for c in self.cast.characters if c.id != "hopper"]
        return super().synthesize(text, character, knobs, out_path, parenthetical, sample_rate, others)


@pytest.fixture
def faulty_backend(example_project):
    WrongVoiceOnFirstTake.cast = example_project.cast
    registry.register("speech", WrongVoiceOnFirstTake.name, lambda: WrongVoiceOnFirstTake())
    yield WrongVoiceOnFirstTake.name
    registry.SPEECH.pop(WrongVoiceOnFirstTake.name)


def test_wrong_voice_is_caught_retried_and_logged(tmp_path, faulty_backend, capsys):
    script = copy.deepcopy(MINI_SCRIPT)
    script["render"]["evaluators"] = ["speaker_similarity"]
    path = write_project(tmp_path / "proj", script)
    assert main([str(path), "--out", str(tmp_path / "out"), "--speech", faulty_backend, "--quiet"]) == 0
    run = tmp_path / "out" / "mini"
    recs = [r for r in records(run) if r["shot"] == "sc01_sh02"]
    assert [r["attempt"] for r in recs] == [1, 2]
    first, second = recs
    assert first["verdict"] == "retry" and not first["passed"]
    assert any(not s["passed"] and s["name"].startswith("speaker") for s in first["scores"])
    assert "speaker" in first["reason"]
    assert second["verdict"] == "accepted_after_retry" and second["passed"]
    assert second["changes"]["speech.seed"] == [0, 1]
    assert second["speech_knobs"]["seed"] == 1
    capsys.readouterr()
    assert main(["report", str(run), "--shot", "sc01_sh02"]) == 0
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "speech.seed" in text and "accepted_after_retry" in text and "speaker" in text
