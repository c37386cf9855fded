"""Render the example film from a cold cache and print wall time and realtime factor.

    .venv/bin/python -m bench.demo [--no-eval] [--keep DIR]

Realtime factor here is film seconds per wall-clock second (higher is faster).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-eval", action="store_true", help="skip the evaluators")
    ap.add_argument("--keep", type=Path, help="write the run here instead of a temporary folder")
    args = ap.parse_args()
    from orchestrator.cli import main as compose

    work = args.keep or Path(tempfile.mkdtemp(prefix="cc-bench-"))
    shutil.rmtree(work / "out", ignore_errors=True)
    argv = [str(ROOT / "examples/orbit/script.yaml"), "--out", str(work / "out"), "--quiet"]
    if args.no_eval:
        argv.append("--no-eval")
    t0 = time.perf_counter()
    rc = compose(argv)
    wall = time.perf_counter() - t0
    if rc != 0:
        sys.exit(rc)
    run = work / "out" / "orbit-cat"
    plan = json.loads((run / "plan.json").read_text())
    recs = [json.loads(x) for x in (run / "retries.jsonl").read_text().splitlines()]
    film = sum(s["duration"] for s in plan["shots"])
    print(f"example film: {len(plan['shots'])} shots, {film:.2f} s of film, {len(recs)} attempts")
    print(f"wall time: {wall:.1f} s (cold cache, evaluators {'off' if args.no_eval else 'on'})")
    print(f"realtime factor: {film / wall:.3f} film seconds per wall second")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
