"""`--workers 2`: shots rendered at the same time make the same film as one at a time, and the shared
cache stays sound (one entry per key, every entry's files matching their digests, no temp files).

The speech backend is piper itself (same name and version, so the same cache keys) with a rendezvous:
its first two lines wait for each other, so two shots are provably in flight at once.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from orchestrator.store import digest_file
from tests.fixtures.pipeline_kit import (
    MINI_SCRIPT,
    cache_entries,
    compose,
    damaged_entries,
    leftovers,
    manifest,
    video_frames,
    write_project,
)
from tools import registry
from tools.media.audio import read_audio
from tools.speech import piper


class Rendezvous(piper.PiperSynthesizer):
    """Piper whose first two lines, once spoken, wait (up to 30 s) for each other."""

    barrier = threading.Barrier(2, timeout=30)
    met: list[bool] = []
    calls = {"n": 0}
    lock = threading.Lock()

    def synthesize(self, *args, **kwargs):
        with self.lock:
            self.calls["n"] += 1
            first_two = self.calls["n"] <= 2
        result = super().synthesize(*args, **kwargs)
        if first_two:  # both shots then go on to mix, render and score side by side
            try:
                self.barrier.wait()
                self.met.append(True)
            except threading.BrokenBarrierError:
                self.met.append(False)
        return result


def _render(folder, script, workers: int):
    path = write_project(folder / "proj", script)
    assert compose(path, "--out", folder / "out", "--workers", workers) == 0
    return folder / "out" / "mini"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("workers")
    one = _render(base / "one", MINI_SCRIPT, 1)
    original = registry.SPEECH["piper"]
    registry.register("speech", "piper", Rendezvous)
    try:
        two = _render(base / "two", MINI_SCRIPT, 2)
    finally:
        registry.register("speech", "piper", original)
    return one, two


def test_two_shots_were_in_flight_at_once(runs):
    assert Rendezvous.met == [True, True]


def test_two_workers_make_the_same_film(runs):
    one, two = runs
    for name in ("plan.json", "film.srt"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    a, b = video_frames(one / "film.mp4"), video_frames(two / "film.mp4")
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    sa, sb = read_audio(one / "film.mp4", 24000), read_audio(two / "film.mp4", 24000)
    assert np.array_equal(sa, sb)
    assert digest_file(one / "film.mp4") == digest_file(two / "film.mp4")
    m1, m2 = manifest(one), manifest(two)
    assert m1["shots"] == m2["shots"] and m1["cache"] == m2["cache"] and m1["loudness"] == m2["loudness"]


def test_the_shared_cache_holds_one_sound_entry_per_key_and_no_temp_files(runs):
    one, two = runs
    assert cache_entries(two) == cache_entries(one)  # the same keys, each with the same file digests
    assert damaged_entries(two) == []
    assert manifest(two)["cache"]["misses"] == len(cache_entries(two))  # each entry built once
    assert leftovers(two) == []


def test_an_entry_handed_out_stays_readable_while_another_worker_publishes_the_same_key(tmp_path, monkeypatch):
    """The interleaving that the first test hits about once in 300 tries, made certain: worker A builds
    and publishes, worker B (same key, built at the same time) publishes right after, and A reads
    the entry it was given in between. Every wait has a timeout, so a cache that never deletes a
    published entry (or lets B wait for A) passes quickly."""
    import shutil
    import types

    from orchestrator import store

    key = "cd" + "0" * 62
    cache = store.Cache(tmp_path / "cache")
    final = cache.entry_dir(key)
    both_building, roles = threading.Barrier(2), []
    a_published, b_removed, a_read = threading.Event(), threading.Event(), threading.Event()

    def rmtree(path, ignore_errors=False):
        shutil.rmtree(path, ignore_errors=ignore_errors)
        if Path(path) == final and a_published.is_set() and not b_removed.is_set():
            b_removed.set()  # B has cleared the way for its own copy; A reads now
            a_read.wait(5)

    monkeypatch.setattr(store, "shutil", types.SimpleNamespace(rmtree=rmtree, copyfile=shutil.copyfile))

    def build(tmp):
        try:
            both_building.wait(timeout=5)
        except threading.BrokenBarrierError:
            pass  # a cache that makes B wait for A never builds twice
        with threading.Lock():
            roles.append(tmp)
        if len(roles) > 1:
            a_published.wait(5)  # B finishes second
        (tmp / "speech.wav").write_bytes(b"RIFF" + bytes(1000))
        return ["speech.wav"]

    got = {}

    def worker(name):
        try:
            entry, _ = cache.get_or_build(key, build)
            if not a_published.is_set():
                a_published.set()
                b_removed.wait(5)
            got[name] = (entry / "speech.wav").read_bytes()
        except OSError as exc:
            got[name] = exc
        finally:
            a_read.set()

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert got == {"a": b"RIFF" + bytes(1000), "b": b"RIFF" + bytes(1000)}
    assert damaged_entries(tmp_path) == [] and leftovers(tmp_path) == []


@pytest.mark.parametrize("video, cores, size", [("animatic", 2, 2), ("animatic", 16, 2), ("animatic", 1, 1),
                                                ("avdit", 16, 1)])
def test_without_workers_the_animatic_renders_two_shots_at_once_a_gpu_model_one(monkeypatch, video, cores, size):
    from orchestrator.config import RenderConfig
    from orchestrator.context import RunContext
    from orchestrator.executors import LocalRunner

    monkeypatch.setattr("os.cpu_count", lambda: cores)
    ctx = RunContext(project=None, config=RenderConfig(video=video), out_dir=Path("."), started=0.0)
    assert LocalRunner(ctx, lambda ctx: None).size == size
    assert LocalRunner(ctx, lambda ctx: None, workers=3).size == 3
