"""Render the example film from a cold cache and print wall time and realtime factor.

    .venv/bin/python -m bench.demo [--no-eval] [--keep DIR] [--cold-voices] [--audition]

Realtime factor here is film seconds per wall-clock second (higher is faster). The run's own cache
starts empty; the voice fits (once per reference, in the user cache, or the ones the example ships beside its
clips in voice-fits/) are reused unless `--cold-voices` gives the run an empty user cache and sets the
shipped fits aside, as on a writer's first run of their own cast on a new machine. `--audition` runs
`compose voices` first, as a writer who hears the cast before rendering does, and times both.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.pace import QUIET_S, probe

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-eval", action="store_true", help="skip the evaluators")
    ap.add_argument("--keep", type=Path, help="write the run here instead of a temporary folder")
    ap.add_argument("--cold-voices", action="store_true",
                    help="an empty user cache and no shipped fits: every voice fitted afresh")
    ap.add_argument("--audition", action="store_true", help="`compose voices` before the render, timed apart")
    args = ap.parse_args()
    if args.cold_voices:  # before anything reads the user cache folder
        os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="cc-bench-cache-")
    from orchestrator.cli import main as compose

    work = args.keep or Path(tempfile.mkdtemp(prefix="cc-bench-"))
    shutil.rmtree(work / "out", ignore_errors=True)
    example = ROOT / "examples" / "orbit"
    if args.cold_voices:  # the example without the fits it ships beside its clips (voice-fits/)
        shutil.rmtree(work / "orbit", ignore_errors=True)
        example = Path(shutil.copytree(example, work / "orbit", ignore=shutil.ignore_patterns("voice-fits")))
    argv = [str(example / "script.yaml"), "--out", str(work / "out"), "--quiet"]
    if args.no_eval:
        argv.append("--no-eval")
    if args.audition:
        t0 = time.perf_counter()
        rc = compose(["voices", *argv[:4]])  # the script, --out, --quiet
        heard = time.perf_counter() - t0
        if rc != 0:
            sys.exit(rc)
        voices = json.loads((work / "out" / "orbit-cat" / "voices" / "voices.json").read_text())
        lines = [ln for c in voices["characters"] for ln in c["lines"]]
        passing = sum(c["passed"] for c in voices["characters"])
        print(f"audition: {len(lines)} lines of {len(voices['characters'])} voices in {heard:.1f} s, "
              f"{passing} of {len(voices['characters'])} voices pass")
    pace_before = min(probe() for _ in range(5))
    t0 = time.perf_counter()
    rc = compose(argv)
    wall = time.perf_counter() - t0
    pace_after = min(probe() for _ in range(5))
    if rc != 0:
        sys.exit(rc)
    run = work / "out" / "orbit-cat"
    plan = json.loads((run / "plan.json").read_text())
    recs = [json.loads(x) for x in (run / "retries.jsonl").read_text().splitlines()]
    film = sum(s["duration"] for s in plan["shots"])
    print(f"example film: {len(plan['shots'])} shots, {film:.2f} s of film, {len(recs)} attempts")
    fits = "made afresh" if args.cold_voices else "reused when cached"
    print(f"wall time: {wall:.1f} s (cold run cache, voice fits {fits}, evaluators {'off' if args.no_eval else 'on'})")
    print(f"realtime factor: {film / wall:.3f} film seconds per wall second")
    print(f"this machine's pace (bench.pace, before and after): probe {pace_before:.3f} s and {pace_after:.3f} s "
          f"(quiet {QUIET_S:.3f} s)")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    if args.cold_voices:
        shutil.rmtree(os.environ["XDG_CACHE_HOME"], ignore_errors=True)


if __name__ == "__main__":
    main()
