"""Hostile inputs through `compose validate`: wall time, exit code and peak memory of each.

Run: .venv/bin/python -m bench.faults
The inputs: a YAML alias bomb (nine levels of ten aliases, 1 kB), 20,000-deep nesting, a Python
object tag, a 50 MB script, and scripts of 0.25 / 0.5 / 1 MiB (load time should grow linearly).
"""
from __future__ import annotations

import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAD = "title: Bench\ncast: cast.yaml\n"
SCENE = "  - heading: INT. LAB - DAY\n    beats:\n      - action: The lights hum in the small lab tonight.\n"


def inputs() -> dict[str, str]:
    bomb = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    out = {
        "alias bomb (1 kB)": HEAD + "\n".join(bomb) + "\nscenes: [*a9]\n",
        "nesting 20,000 deep": HEAD + "scenes: " + "[" * 20000 + "]" * 20000 + "\n",
        "!!python/object/apply": HEAD + "scenes: !!python/object/apply:os.system ['echo hi']\n",
        "50 MB script": HEAD + ("# " + "x" * 1022 + "\n") * (50 * 1024) + "scenes: []\n",
    }
    for kib in (256, 512, 1000):
        n = kib * 1024 // len(SCENE)
        out[f"{kib} KiB of scenes"] = HEAD + "scenes:\n" + SCENE * n
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "examples" / "orbit" / "assets", work / "assets")
        shutil.copy(ROOT / "examples" / "orbit" / "cast.yaml", work / "cast.yaml")
        print(f"{'input':28s} {'size':>9s} {'exit':>5s} {'seconds':>8s} {'peak MB':>8s}")
        for name, text in inputs().items():
            path = work / "script.yaml"
            path.write_text(text)
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", "validate", str(path)],
                                  cwd=ROOT, capture_output=True, text=True, timeout=600)
            seconds = time.perf_counter() - t0
            peak = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
            traceback = " TRACEBACK" if "Traceback" in proc.stderr else ""
            print(f"{name:28s} {len(text) / 2**20:8.2f}M {proc.returncode:5d} {seconds:8.2f} {peak:8.0f}{traceback}")


if __name__ == "__main__":
    main()
