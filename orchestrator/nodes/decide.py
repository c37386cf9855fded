"""Decide node: accept the attempt, retry it with changed knobs, or keep the best one flagged.

Each attempt leaves a `record.json` beside its artifacts; the stitch node gathers them, in plan order,
into `retries.jsonl`.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from orchestrator import retry
from orchestrator.context import RunContext
from orchestrator.nodes.evaluate import load_scores
from orchestrator.state import ShotState
from orchestrator.store import atomic_write_json, digest_file
from tools.base import SpeechKnobs, VideoKnobs


def _failing(scores) -> str:
    bad = [f"{s.name}={s.value:.3g} ({'<' if s.higher_is_better else '>'} {s.threshold:g})"
           for s in scores if not s.passed]
    return ", ".join(bad)


def decide(state: ShotState, ctx: RunContext) -> dict:
    ctx.check_stop()
    attempt_dir = Path(state["attempt_dir"])
    shot_id, attempt, cap = state["shot_id"], state["attempt"], state["max_attempts"]
    scores = load_scores(attempt_dir)
    passed = all(s.passed for s in scores)
    q = retry.quality(scores)
    summary = {"attempt": attempt, "quality": q, "passed": passed, "dir": str(attempt_dir)}
    history = list(state.get("history", [])) + [summary]
    update: dict = {"history": [summary]}
    speech = SpeechKnobs(**state["speech_knobs"])
    video = VideoKnobs(**state["video_knobs"])
    if passed:
        decision, verdict = "accept", retry.verdict(True, attempt, False)
        reason = "all scores pass" if attempt == 1 else f"passes after retry ({state.get('reason', '')})"
    elif attempt >= cap:
        best = max(history, key=lambda h: h["quality"])
        decision, verdict = "give_up", retry.verdict(False, attempt, True)
        reason = f"failing after {attempt} attempts: {_failing(scores)}; kept attempt {best['attempt']}"
    else:
        decision, verdict = "retry", "retry"
        new_speech, new_video, changes, why = retry.plan_retry(
            scores, speech, video, attempt, take_noise=ctx.speech.take_noise,
            audio_guidance=ctx.video.default_audio_guidance)
        reason = f"failing: {_failing(scores)}; next: {why}"
        update.update(
            speech_knobs=asdict(new_speech), video_knobs=asdict(new_video), changes=changes,
            reason=why, attempt=attempt + 1,
        )
    record = {
        "shot": shot_id,
        "attempt": attempt,
        "backends": {"speech": ctx.config.speech, "video": ctx.config.video},
        "speech_knobs": asdict(speech),
        "video_knobs": asdict(video),
        "seed": speech.seed,
        "scores": [s.as_dict() for s in scores],
        "passed": passed,
        "quality": q,
        "verdict": verdict,
        "reason": reason,
        "changes": state.get("changes", {}),
        "seconds": round(time.time() - state.get("started", time.time()), 3),
        "clip": str(Path("shots") / shot_id / attempt_dir.name / "clip.mp4"),
    }
    atomic_write_json(attempt_dir / "record.json", record)
    # What this attempt left on disk, as written: a resumed run checks these before reusing them.
    summary["files"] = {p.name: digest_file(p) for p in sorted(attempt_dir.iterdir()) if p.is_file()}
    ctx.on_event("attempt", record)
    update["decision"] = decision
    return update


def shot_result(state: ShotState) -> dict:
    """The summary of a finished shot that goes back to the film graph."""
    history = state["history"]
    accepted = [h for h in history if h["passed"]]
    best = accepted[-1] if accepted else max(history, key=lambda h: h["quality"])
    last = Path(history[-1]["dir"]) / "record.json"
    return {
        "shot_id": state["shot_id"],
        "attempts": len(history),
        "best_dir": best["dir"],
        "best_attempt": best["attempt"],
        "passed": best["passed"],
        "records": [str(Path(h["dir"]) / "record.json") for h in history],
        "files": {h["dir"]: h.get("files", {}) for h in history},
        "final_record": str(last),
        "cache": state.get("cache", {}),
    }
