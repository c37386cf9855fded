"""manifest.json: versions, config, seeds, digests of every output, timings, cache and planner usage."""
from __future__ import annotations

import platform
from functools import reduce
from importlib import metadata
from pathlib import Path

from orchestrator.store import add_counts, atomic_write_json, digest_file

PACKAGES = ("torch", "diffusers", "transformers", "peft", "langgraph", "openai", "piper-tts", "pydantic",
            "opencv-python-headless", "av", "faster-whisper", "resemblyzer", "pyworld-prebuilt")


def package_versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def write_manifest(ctx, state: dict, seconds: float) -> dict:
    """manifest.json from the run's inputs and the film graph's final state."""
    out = ctx.out_dir
    results = state["results"]
    tools = {"speech": [ctx.speech.name, ctx.speech.version], "video": [ctx.video.name, ctx.video.version]}
    shots = {
        sid: {"attempts": r["attempts"], "chosen_attempt": r["best_attempt"], "passed": r["passed"],
              "clip_sha256": digest_file(Path(r["best_dir"]) / "clip.mp4")}
        for sid, r in results.items()
    }
    manifest = {
        "title": ctx.project.script.title,
        "inputs": {"script": str(ctx.project.script_path), "script_sha256": digest_file(ctx.project.script_path),
                   "cast": str(ctx.project.cast_path), "cast_sha256": digest_file(ctx.project.cast_path)},
        "config": ctx.config.public_dump(),
        "seed": ctx.config.seed,
        "tools": tools,
        "evaluators": ctx.config.evaluators,
        "versions": {"python": platform.python_version(), **package_versions()},
        "outputs": {name: digest_file(out / name) for name in ("film.mp4", "film.srt", "film.otio", "plan.json")
                    if (out / name).exists()},
        "shots": shots,
        "planner_usage": state.get("planner_usage", {}),
        "loudness": state.get("loudness", {}),
        "cache": reduce(add_counts, (r.get("cache", {}) for r in results.values()),
                        {"hits": 0, "misses": 0, "rebuilt": 0}),
        "seconds": round(seconds, 3),
    }
    atomic_write_json(out / "manifest.json", manifest)
    return manifest
