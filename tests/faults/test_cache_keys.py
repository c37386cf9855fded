"""Cache keys of speech, clips and scores invalidate exactly what they should, measured from a rerun of
a finished run: the manifest's cache counts, the entries on disk and the clips' digests.

The mini project (4 shots, 3 of them with one line each) runs with one cheap real evaluator, the
level of the rendered clip's decoded audio, so that every shot has a score set in the cache. A run
asks the cache for 3 lines + 4 clips + 4 score sets = 11 entries.
"""
from __future__ import annotations

import copy
import shutil
from dataclasses import replace

import numpy as np
import pytest

from orchestrator.store import digest_file
from tests.fixtures.pipeline_kit import (
    MINI_SCRIPT,
    cache_entries,
    compose,
    manifest,
    write_project,
)
from tools import registry
from tools.base import Score
from tools.media.audio import read_audio, write_wav
from tools.speech import piper
from tools.video.animatic.renderer import AnimaticRenderer

SPEAKING = ["sc01_sh02", "sc01_sh03", "sc01_sh04"]
SILENT = "sc01_sh01"


class SpeechLevel:
    """Evaluator: RMS of the clip's decoded audio for shots with lines; passes above `threshold`."""

    name = "speech_level"
    version = "1"

    def __init__(self, threshold: float = 0.001):
        self.threshold = threshold
        self.thresholds = {"level": threshold}

    def evaluate(self, attempt):
        if not attempt.audio.lines:
            return []
        rms = float(np.sqrt(np.mean(read_audio(attempt.video.clip_path, 16000) ** 2)))
        return [Score(f"level[{attempt.shot.id}]", rms, self.threshold)]


class PiperNext(piper.PiperSynthesizer):
    """The piper backend after a change to its output (a little quieter), with its version bumped."""

    version = "next"

    def synthesize(self, text, character, knobs, out_path, parenthetical=None, sample_rate=24000, others=()):
        res = super().synthesize(text, character, knobs, out_path, parenthetical, sample_rate, others)
        write_wav(out_path, read_audio(out_path, sample_rate) * 0.8, sample_rate)
        return res


@pytest.fixture
def backends():
    """Registry entries restored after each test."""
    saved = dict(registry.SPEECH), dict(registry.EVALUATORS)
    registry.register("evaluator", SpeechLevel.name, SpeechLevel)
    yield
    registry.SPEECH.clear(), registry.SPEECH.update(saved[0])
    registry.EVALUATORS.clear(), registry.EVALUATORS.update(saved[1])


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    registry.register("evaluator", SpeechLevel.name, SpeechLevel)
    try:
        script = copy.deepcopy(MINI_SCRIPT)
        script["render"]["evaluators"] = [SpeechLevel.name]
        folder = tmp_path_factory.mktemp("keys")
        assert compose(write_project(folder / "proj", script), "--out", folder / "out") == 0
    finally:
        registry.EVALUATORS.pop(SpeechLevel.name)
    m = manifest(folder / "out" / "mini")
    assert m["cache"] == {"hits": 0, "misses": 11, "rebuilt": 0}
    assert all(s["passed"] and s["attempts"] == 1 for s in m["shots"].values())
    return folder


def _rerun(first, tmp_path):
    """Rerun a moved copy of the first run (project, outputs and cache) with the same command."""
    shutil.copytree(first, tmp_path / "copy")
    run = tmp_path / "copy" / "out" / "mini"
    before = set(cache_entries(run))
    assert compose(tmp_path / "copy" / "proj" / "script.yaml", "--out", tmp_path / "copy" / "out") == 0
    return run, set(cache_entries(run)) - before


def _scores(run, sid):
    import json

    return json.loads((run / "shots" / sid / "attempt-1" / "scores.json").read_text())


def test_unchanged_rerun_is_all_hits(first, tmp_path, backends):
    run, new = _rerun(first, tmp_path)
    assert manifest(run)["cache"] == {"hits": 11, "misses": 0, "rebuilt": 0} and new == set()


def test_speech_version_bump_invalidates_speech_clips_and_scores_of_the_speaking_shots(first, tmp_path, backends):
    registry.register("speech", "piper", PiperNext)
    run, new = _rerun(first, tmp_path)
    old = manifest(first / "out" / "mini")
    m = manifest(run)
    # 3 lines, their 3 shots' clips and score sets are new; the silent shot's clip and scores are hits.
    assert m["cache"] == {"hits": 2, "misses": 9, "rebuilt": 0}
    assert len(new) == 9
    assert m["tools"]["speech"] == ["piper", "next"]
    assert {sid for sid in old["shots"] if old["shots"][sid]["clip_sha256"] != m["shots"][sid]["clip_sha256"]} \
        == set(SPEAKING)
    for sid in SPEAKING:  # the scores were measured again, on the quieter clips
        assert _scores(run, sid)[0]["value"] < _scores(first / "out" / "mini", sid)[0]["value"]


def test_thresholds_change_invalidates_only_the_scores(first, tmp_path, backends):
    registry.register("evaluator", SpeechLevel.name, lambda: SpeechLevel(threshold=0.002))
    run, new = _rerun(first, tmp_path)
    old, m = manifest(first / "out" / "mini"), manifest(run)
    assert m["cache"] == {"hits": 7, "misses": 4, "rebuilt": 0}  # 3 lines and 4 clips reused
    assert len(new) == 4
    assert {sid: s["clip_sha256"] for sid, s in m["shots"].items()} == \
        {sid: s["clip_sha256"] for sid, s in old["shots"].items()}
    assert digest_file(run / "film.mp4") == digest_file(first / "out" / "mini" / "film.mp4")
    for sid in SPEAKING:  # the same measurement against the new bar
        now, before = _scores(run, sid)[0], _scores(first / "out" / "mini", sid)[0]
        assert (now["value"], now["threshold"], before["threshold"]) == (before["value"], 0.002, 0.001)
    assert _scores(run, SILENT) == []


class AnimaticNext(AnimaticRenderer):
    """The animatic after a change to its output (other head sway), with its version bumped."""

    version = "next"

    def render(self, shot, scene, audio, cast, knobs, clip_path, masks_path):
        return super().render(shot, scene, audio, cast, replace(knobs, seed=knobs.seed + 1), clip_path, masks_path)


def test_video_version_bump_invalidates_clips_and_scores_not_speech(first, tmp_path, backends):
    saved = registry.VIDEO["animatic"]
    registry.register("video", "animatic", AnimaticNext)
    try:
        run, new = _rerun(first, tmp_path)
    finally:
        registry.register("video", "animatic", saved)
    old, m = manifest(first / "out" / "mini"), manifest(run)
    assert m["cache"] == {"hits": 3, "misses": 8, "rebuilt": 0}  # the 3 lines reused; 4 clips, 4 score sets new
    assert len(new) == 8
    assert all(m["shots"][sid]["clip_sha256"] != old["shots"][sid]["clip_sha256"] for sid in old["shots"])
