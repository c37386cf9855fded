"""Evaluate node: every enabled evaluator scores the attempt; scores are cached by content."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from orchestrator.context import RunContext
from orchestrator.nodes.render import load_attempt
from orchestrator.schema.plan import SceneInfo
from orchestrator.state import ShotState
from orchestrator.store import atomic_write_json, cache_counts, digest_file, digest_json
from tools.base import AttemptInput, Score, VideoResult


def run_evaluators(evaluators: list, inp: AttemptInput, workers: int = 2) -> list[Score]:
    """Every evaluator's scores, in the evaluators' order, computed on `workers` threads.

    Listening (ASR, speaker encoder) and looking (decode, mouths, faces) release the GIL for most of
    their time, so two threads score a shot in about the time of the slower half; evaluators that
    declare themselves `slow` start first."""
    order = sorted(range(len(evaluators)), key=lambda i: not getattr(evaluators[i], "slow", False))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {i: pool.submit(evaluators[i].evaluate, inp) for i in order}
        return [s for i in range(len(evaluators)) for s in futures[i].result()]


def load_scores(attempt_dir: Path) -> list[Score]:
    raw = json.loads((attempt_dir / "scores.json").read_text())
    return [Score(**{k: v for k, v in s.items() if k != "passed"}) for s in raw]


def evaluate(state: ShotState, ctx: RunContext) -> dict:
    ctx.check_stop()
    attempt_dir = Path(state["attempt_dir"])
    shot, audio = load_attempt(attempt_dir)
    scene = SceneInfo.model_validate(state["scene"])
    ctx.on_event("stage", {"shot": shot.id, "stage": "evaluate", "attempt": state["attempt"]})
    clip, masks = attempt_dir / "clip.mp4", attempt_dir / "masks.npz"
    evaluators = ctx.evaluators()
    key = digest_json(
        {
            "kind": "scores",
            "evaluators": [[e.name, getattr(e, "version", "1")] for e in evaluators],
            "thresholds": [getattr(e, "thresholds", None) for e in evaluators],
            "clip": digest_file(clip),
            "masks": digest_file(masks),
            "lines": [[ln.line_id, ln.speaker, ln.text, ln.start, digest_file(ln.speech.wav_path)]
                      for ln in audio.lines],
            "shot": shot.model_dump(mode="json"),
        }
    )

    def build(tmp: Path):
        fps = ctx.config.fps
        video = VideoResult(clip, masks, int(round(shot.duration * fps)), fps)
        inp = AttemptInput(shot, scene, ctx.project.cast, audio, video)
        scores = run_evaluators(evaluators, inp)
        atomic_write_json(tmp / "scores.json", [s.as_dict() for s in scores])
        return ["scores.json"]

    entry, outcome = ctx.cache.get_or_build(key, build)
    atomic_write_json(attempt_dir / "scores.json", json.loads((entry / "scores.json").read_text()))
    return {"cache": cache_counts(outcome)}
