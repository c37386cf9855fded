"""What the `compose` command's exit costs: a normal interpreter exit against `orchestrator.cli.exit_now`.

A child process loads what a render loads (torch with a matrix product, numba's compiled librosa kernels,
ONNX Runtime with the Kokoro session, CTranslate2 with the recogniser), notes the time, then ends either way;
the parent notes when the child is gone. Also the example's whole `compose validate`, each way.

Run: `.venv/bin/python -m bench.exit_cost [--repeat 3]`
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOADED = """
import sys, time
import torch
torch.ones(1000, 1000) @ torch.ones(1000, 1000)
import librosa.core.pitch
from tools.speech import kokoro_voice
kokoro_voice._load()
from tools.hearing import recogniser
recogniser.load_whisper()
from orchestrator.cli import exit_now
print(time.time(), flush=True)
{how}
"""
VALIDATE = """
import sys
from orchestrator.cli import exit_now, main
code = main(["validate", "examples/orbit/script.yaml"])
{how}
"""
WAYS = {"normal exit": "sys.exit(0)", "exit_now": "exit_now(0)"}


def _exit_seconds(how: str) -> float:
    proc = subprocess.run([sys.executable, "-c", LOADED.format(how=how)], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    return time.time() - float(proc.stdout.split()[-1])


def _validate_seconds(how: str) -> float:
    started = time.time()
    subprocess.run([sys.executable, "-c", VALIDATE.format(how=how.replace("(0)", "(code)"))], cwd=ROOT,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300, check=True)
    return time.time() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    for name, how in WAYS.items():
        ends = [_exit_seconds(how) for _ in range(args.repeat)]
        whole = [_validate_seconds(how) for _ in range(args.repeat)]
        print(f"{name:12s}  exit after a render's libraries: {min(ends):.2f}-{max(ends):.2f} s   "
              f"compose validate (example), whole: {min(whole):.2f}-{max(whole):.2f} s")


if __name__ == "__main__":
    main()
