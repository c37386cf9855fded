"""Executors compared: the example film's wall time locally, on a local Ray at 1 and 2 workers, and on
a real two-node Ray cluster on this machine (two raylets, one CPU each, the pool sized by the cluster:
one shot worker per node), then a simulation of the diffusion backend's film on 8, 32 and 128 GPUs.

    .venv/bin/python -m bench.executor [--no-eval] [--step-s 35] [--steps 40]

The simulation takes each shot's length from the rendered plan, prices a shot on one GPU at
`steps x step_s` per 3 s of film (MultiTalk publishes 35 s a denoising step at 480p on an A100, 40
steps), and schedules the shots longest first onto N workers (a shot never splits across GPUs).
"""
from __future__ import annotations

import argparse
import heapq
import json
import shutil
import tempfile
import time
from pathlib import Path

from orchestrator.cli import main as compose

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "orbit" / "script.yaml"


def render(work: Path, *flags: str) -> tuple[float, Path]:
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)  # a cold cache for every run
    t0 = time.perf_counter()
    rc = compose([str(SCRIPT), "--out", str(out), "--quiet", *flags])
    if rc != 0:
        raise SystemExit(f"compose {' '.join(flags)} exited {rc}")
    return time.perf_counter() - t0, out / "orbit-cat"


def two_node_render(work: Path, *flags: str) -> tuple[float, Path]:
    """The film through `--ray-address` on a two-node cluster (`ray.cluster_utils.Cluster`: a head and
    a second raylet, each with its own object store), no `--workers`: one actor lands on each node."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        return render(work, "--executor", "ray", "--ray-address", cluster.address, *flags)
    finally:
        cluster.shutdown()


def makespan(durations: list[float], workers: int) -> float:
    """Longest-first greedy schedule of independent shots on `workers`: when the last one ends."""
    free = [0.0] * workers
    for d in sorted(durations, reverse=True):
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--step-s", type=float, default=35.0, help="seconds per denoising step on one GPU")
    ap.add_argument("--steps", type=int, default=40, help="denoising steps per 3 s of film")
    args = ap.parse_args()
    extra = ["--no-eval"] if args.no_eval else []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = []
        for label, flags in (("local, 1 worker", []), ("ray, 1 worker", ["--executor", "ray", "--workers", "1"]),
                             ("ray, 2 workers", ["--executor", "ray", "--workers", "2"])):
            wall, run = render(work, *flags, *extra)
            rows.append((label, wall, (run / "film.mp4").read_bytes()))
        wall, run = two_node_render(work, *extra)
        rows.append(("ray, 2 nodes", wall, (run / "film.mp4").read_bytes()))
        plan = json.loads((run / "plan.json").read_text())
    film = sum(s["duration"] for s in plan["shots"])
    print(f"example film: {len(plan['shots'])} shots, {film:.1f} s, evaluators {'off' if args.no_eval else 'on'}")
    print(f"{'executor':18s} {'wall s':>8s} {'film identical to local':>24s}")
    for label, wall, film_bytes in rows:
        print(f"{label:18s} {wall:8.1f} {str(film_bytes == rows[0][2]):>24s}")
    per_shot = [s["duration"] / 3.0 * args.steps * args.step_s for s in plan["shots"]]
    one = sum(per_shot)
    print(f"\ndiffusion backend, {args.steps} steps x {args.step_s:.0f} s per 3 s of film: "
          f"{one / 3600:.2f} h on 1 GPU for this film")
    print(f"{'GPUs':>5s} {'hours':>7s} {'speed-up':>9s}  (limit: the longest shot, {max(per_shot) / 60:.1f} min)")
    for n in (1, 8, 32, 128):
        span = makespan(per_shot, n)
        print(f"{n:5d} {span / 3600:7.2f} {one / span:9.1f}")
    # A two-minute film of ~40 shots of 3 s, the example.
    forty = [args.steps * args.step_s] * 40
    print(f"\n40 shots of 3 s: 1 GPU {sum(forty) / 3600:.1f} h; "
          + "; ".join(f"{n} GPUs {makespan(forty, n) / 60:.0f} min" for n in (8, 32, 128)))


if __name__ == "__main__":
    main()
