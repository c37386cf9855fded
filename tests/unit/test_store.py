"""Atomic writes and the content-addressed cache, including a corrupted entry."""
from __future__ import annotations

import pytest

from orchestrator.store import Cache, atomic_write_json, cache_counts, digest_json, written_whole


def test_atomic_write_leaves_no_temporaries(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_write_that_fails_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "voice.fit.json"
    path.write_text("old")
    with pytest.raises(OSError):
        with written_whole(path) as tmp:
            tmp.write_text("half a new fi")
            raise OSError("disk full")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["voice.fit.json"]
    with written_whole(path) as tmp:
        assert tmp.parent == path.parent and tmp.suffix == ".json" and tmp != path
        tmp.write_text("new")
        assert path.read_text() == "old"  # nobody sees the new file before the block ends
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["voice.fit.json"]


def test_digest_is_key_order_independent():
    assert digest_json({"a": 1, "b": [1, 2]}) == digest_json({"b": [1, 2], "a": 1})
    assert digest_json({"a": 1}) != digest_json({"a": 2})


def test_cache_hit_and_corrupt_entry_rebuilt(tmp_path):
    cache = Cache(tmp_path)
    builds = []

    def build(d):
        builds.append(1)
        (d / "out.bin").write_bytes(b"payload")
        return ["out.bin"]

    entry, outcome = cache.get_or_build("ab" * 32, build)
    assert outcome == "miss" and (entry / "out.bin").read_bytes() == b"payload"
    entry, outcome = cache.get_or_build("ab" * 32, build)
    assert outcome == "hit" and len(builds) == 1
    (entry / "out.bin").write_bytes(b"paylo4d")  # same size, different bytes
    entry, outcome = cache.get_or_build("ab" * 32, build)
    assert outcome == "rebuilt" and len(builds) == 2
    assert cache_counts("miss", "hit", "rebuilt") == {"hits": 1, "misses": 2, "rebuilt": 1}
    assert (entry / "out.bin").read_bytes() == b"payload"
