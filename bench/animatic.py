"""Animatic renderer throughput and memory at 854x480 (prints figures; asserts nothing).

    .venv/bin/python -m bench.animatic [--seconds 20] [--long 60] [--sheet out.png]

Throughput: frames per second of a warm render (portrait cut-outs cached, as in a film run),
including H.264 + AAC encoding and masks.npz packing. Memory: peak RSS of this process sampled
during a short and a long shot; a flat peak means frames are streamed, not accumulated.
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import threading
import time
from pathlib import Path

from tests.fixtures.demo import demo_cast, make_audio, make_scene, make_shot
from tools.base import VideoKnobs
from tools.media.contact_sheet import write_contact_sheet
from tools.video.animatic.renderer import AnimaticRenderer


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed_render(tmp: Path, cast, seconds: float, chars, framing: str, camera: str, tag: str):
    lines, t, i = [], 0.3, 0
    while t + 2.5 < seconds:
        lines.append((chars[i % len(chars)], t, 2.2))
        t, i = t + 2.6, i + 1
    audio = make_audio(tmp / f"audio-{tag}", lines, seconds)
    shot = make_shot(list(chars), framing, audio, camera=camera)
    peak = [rss_mib()]
    done = threading.Event()

    def sample():
        while not done.wait(0.05):
            peak[0] = max(peak[0], rss_mib())

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    start, before = time.perf_counter(), rss_mib()
    res = AnimaticRenderer().render(shot, make_scene(list(chars)), audio, cast,
                                    VideoKnobs(subtitles=True, lower_thirds=True),
                                    tmp / f"{tag}.mp4", tmp / f"{tag}.npz")
    elapsed = time.perf_counter() - start
    done.set()
    th.join()
    return res, elapsed, before, peak[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--long", type=float, default=60.0)
    ap.add_argument("--sheet", type=Path, default=None, help="also write a contact sheet here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cast = demo_cast(tmp / "img")
        t0 = time.perf_counter()
        timed_render(tmp, cast, 1.0, ("collins", "hopper", "chelsea"), "wide", "static", "warm")
        print(f"setup (3 portrait cut-outs, first render of 1 s): {time.perf_counter() - t0:.2f} s")
        clips = []
        for chars, framing, camera in ((("collins", "hopper"), "two-shot", "static"),
                                       (("collins", "hopper"), "over-shoulder", "push-in"),
                                       (("hopper",), "close-up", "static"),
                                       (("collins", "hopper", "chelsea"), "wide", "pan-right")):
            tag = f"{framing}-{len(chars)}"
            res, el, _, peak = timed_render(tmp, cast, args.seconds, chars, framing, camera, tag)
            clips.append((f"{framing}/{camera}", res.clip_path))
            print(f"{tag:18s} {camera:9s} {res.frames} frames in {el:.2f} s = "
                  f"{res.frames / el:6.1f} fps at 854x480, peak RSS {peak:.0f} MiB")
        for seconds in (10.0, args.long):
            res, el, before, peak = timed_render(tmp, cast, seconds, ("collins", "hopper"),
                                                 "two-shot", "push-in", f"long{int(seconds)}")
            print(f"{seconds:4.0f} s shot: {res.frames} frames, {res.frames / el:.1f} fps, RSS before "
                  f"{before:.0f} MiB, peak during render {peak:.0f} MiB (growth {peak - before:.0f} MiB)")
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS: python {own:.0f} MiB, largest ffmpeg child {child:.0f} MiB")
        if args.sheet:
            print("contact sheet:", write_contact_sheet(clips, args.sheet))


if __name__ == "__main__":
    main()
