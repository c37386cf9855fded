"""What one voice choice costs on this machine: wall time and peak memory of the piper backend's base choice
(`fitting.chosen_fit`: every candidate base fitted, two at a time, and judged) for one reference clip, from
an empty user cache.

    .venv/bin/python -m bench.fit_cost [--set wideband] [--voice libri] [--others arctic7 arctic9]

The clip and the rest of its cast come from a real human set (`bench.human_set`, fetched and digest-checked
on first use). The default is the wideband set's LibriVox reader, 24.7 s: the 10-30 s clip the voices
advice asks writers for, where a fit costs most. Memory is the process's resident set, sampled every 50 ms
(and the kernel's own peak, `ru_maxrss`).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS")) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=("wideband", "real"), default="wideband")
    ap.add_argument("--voice", default="libri", help="the reference fitted")
    ap.add_argument("--others", nargs="*", default=["arctic7", "arctic9"], help="the rest of its cast")
    args = ap.parse_args()
    from bench.human_set import fetch, fetch_wideband

    clips = fetch_wideband() if args.set == "wideband" else fetch()
    reference, transcript = clips[args.voice]
    others = [clips[o][0] for o in args.others]
    from tools.media.files import user_cache_dir

    cache = tempfile.mkdtemp(prefix="cc-bench-fit-")
    if (user_cache_dir() / "piper").is_dir():  # the patched piper model, made once per machine: not the fit's
        shutil.copytree(user_cache_dir() / "piper", Path(cache) / "cascade-composer" / "piper")
    os.environ["XDG_CACHE_HOME"] = cache  # before the fit reads the user cache: no fit of this clip is there
    from tools.speech import fitting

    peak, done = [_rss_mb()], threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], _rss_mb())

    threading.Thread(target=watch, daemon=True).start()
    started = time.perf_counter()
    try:
        base, _ = fitting.chosen_fit(reference, transcript, others)
    finally:
        done.set()
        shutil.rmtree(cache, ignore_errors=True)
    wall = time.perf_counter() - started
    print(f"{args.voice} ({args.set}, cast with {', '.join(args.others) or 'nobody'}): chose {base}")
    print(f"wall {wall:.1f} s, peak resident {peak[0]:.0f} MB (ru_maxrss "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
