"""Timing helpers shared by the avdit benchmarks: seconds per guided step and peak memory."""
from __future__ import annotations

import resource
import time

import torch

from models.avdit.guidance import Guidance, guided_noise


def peak_memory_gib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB (process RSS)


def time_mode(model, inputs: dict, guidance: Guidance, steps: int, device: str) -> float:
    """Mean seconds per guided step (one batched forward of every pass)."""
    def step():
        guided_noise(model, guidance=guidance, **inputs)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    with torch.no_grad():
        for _ in range(2):  # warm-up: kernels, allocator, lazy init
            step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
    return (time.perf_counter() - start) / steps
