"""Scoring cost against render cost on the default backends (piper speech + animatic video).

Renders a typical two-character, two-line shot at the default size (854x480, 25 fps), then scores it
with every default evaluator, and prints each evaluator's time and the total as a fraction of the
render time (speech + video). The first scoring pays one-time model loads (Whisper, the speaker
encoder), so cold and warm figures are both printed; the budget (30 %) applies to warm scoring,
which is what every shot after the first costs.

Run: `.venv/bin/python -m bench.eval_cost [--size 854x480] [--repeat 2]`
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from orchestrator.config import RenderConfig
from orchestrator.nodes.evaluate import run_evaluators
from tests.fixtures import evalkit as ek
from tools import registry
from tools.evaluators import signals

ROOT = Path(__file__).resolve().parents[1]

LINES = [("sc01_l03", "collins", "The relays are fine. Check them again if you like."),
         ("sc01_l04", "hopper", "Then look at the cat.")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="854x480")
    ap.add_argument("--repeat", type=int, default=2, help="timed renders and scorings (best is kept)")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    config = RenderConfig()
    evaluators = [registry.create("evaluator", name) for name in config.evaluators]
    cast = ek.orbit_cast()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ek.speak(LINES, cast, work / "warm")  # loads the voice and the matching profiles once
        speech_s, video_s, score_s, parallel_s = [], [], [], []
        per_eval: dict[str, list[float]] = {e.name: [] for e in evaluators}
        cold = None
        for r in range(args.repeat):
            t0 = time.perf_counter()
            audio = ek.speak(LINES, cast, work / f"speech{r}")
            t1 = time.perf_counter()
            shot, scene = ek.make_shot("sc01_sh03", ["collins", "hopper"], audio, cast)
            attempt = ek.render(shot, scene, audio, cast, work / f"video{r}", size=size)
            t2 = time.perf_counter()
            signals._SIGNALS.clear()  # every attempt decodes its own clip
            for e in evaluators:
                te = time.perf_counter()
                e.evaluate(attempt)
                per_eval[e.name].append(time.perf_counter() - te)
            t3 = time.perf_counter()
            signals._SIGNALS.clear()
            tp = time.perf_counter()
            run_evaluators(evaluators, attempt)  # as the evaluate node runs them: two threads
            parallel_s.append(time.perf_counter() - tp)
            if cold is None:
                cold = t3 - t2
            speech_s.append(t1 - t0)
            video_s.append(t2 - t1)
            score_s.append(t3 - t2)
    render = min(speech_s) + min(video_s)
    warm = min(score_s[1:]) if len(score_s) > 1 else score_s[0]
    print(f"shot: {audio.duration:.2f} s, {attempt.video.frames} frames at {args.size}, {len(LINES)} lines")
    print(f"render: speech {min(speech_s):.2f} s + video {min(video_s):.2f} s = {render:.2f} s")
    for name, ts in per_eval.items():
        print(f"  {name:20s} cold {ts[0]:.2f} s  warm {min(ts[1:] or ts):.2f} s")
    print(f"scoring one after another: cold {cold:.2f} s ({cold / render:.0%} of render), "
          f"warm {warm:.2f} s ({warm / render:.0%} of render)")
    par = min(parallel_s)
    print(f"scoring as the evaluate node runs it (two threads), warm: {par:.2f} s ({par / render:.0%} of render)")


if __name__ == "__main__":
    main()
