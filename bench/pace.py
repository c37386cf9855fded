"""How fast this machine is running right now, to read a timing against.

This machine's two cores run the same single-thread work at two speeds, about 1.6x apart, as its host
is busy or quiet (harvest on a fixed 4 s signal: 0.63-0.89 s in one minute, 1.05-1.10 s in the next;
bench/RESULTS.md, twenty-third pass), and nothing in the process changes it. A realtime factor is only
comparable between runs at the same pace, so the benchmarks time a fixed probe before each line and
report the figure both as measured and at the quiet pace (`QUIET_S`): scaled by the quiet probe's time over
the median probe's (a line's own probe is too short to scale that line alone).
"""
from __future__ import annotations

import time

import numpy as np

SR = 22050
# The probe's time on this machine at its quiet pace: about the least of many runs (0.115-0.255 s seen over an
# hour, in three bands: 0.12-0.13, 0.14-0.15 and 0.22-0.25; twenty-third pass).
QUIET_S = 0.120


def _signal() -> np.ndarray:
    """1 s of a vibrato tone in a little noise: a fixed, voiced input for WORLD's harvest."""
    t = np.arange(SR) / SR
    noise = np.random.default_rng(0).standard_normal(SR)
    return 0.3 * np.sin(2 * np.pi * 120 * t + 3 * np.sin(2 * np.pi * 0.5 * t)) + 0.01 * noise


def probe() -> float:
    """Seconds this machine takes now for the probe (WORLD's harvest on `_signal`, one thread): the same
    kind of work as a line's analysis."""
    import pyworld as pw

    x = _signal()
    t0 = time.perf_counter()
    pw.harvest(x, SR, f0_floor=55.0, f0_ceil=700.0, frame_period=5.0)
    return time.perf_counter() - t0


class LineClock:
    """Compute time of lines, summed, with a probe timed before each."""

    def __init__(self) -> None:
        self.measured = self.audio = 0.0
        self.probes: list[float] = []

    def time(self, speak):
        """Run `speak()` (a line: returns a result with `duration`), timed, after a probe."""
        p = probe()
        t0 = time.perf_counter()
        res = speak()
        dt = time.perf_counter() - t0
        self.probes.append(p)
        self.measured += dt
        self.audio += res.duration
        return res

    @property
    def rtf(self) -> float:
        """Seconds of compute per second of speech, as measured."""
        return self.measured / max(self.audio, 1e-9)

    @property
    def rtf_quiet(self) -> float:
        """`rtf` at the quiet pace: scaled by `QUIET_S` over the median probe."""
        return self.rtf * QUIET_S / float(np.median(self.probes)) if self.probes else float("nan")

    def report(self) -> str:
        """The realtime factor both ways, with the probe's spread."""
        p = np.asarray(self.probes or [np.nan])
        return (f"{self.rtf:.3f} as measured, {self.rtf_quiet:.3f} at the quiet pace ({self.measured:.1f} s for "
                f"{self.audio:.1f} s of speech; probe {np.median(p):.3f} s median, {p.min():.3f}-{p.max():.3f}; "
                f"quiet {QUIET_S:.3f} s)")


if __name__ == "__main__":  # the probe's spread now: python -m bench.pace
    runs = [probe() for _ in range(60)]
    print(f"probe: min {min(runs):.3f} s, median {np.median(runs):.3f} s, max {max(runs):.3f} s over {len(runs)} runs")
