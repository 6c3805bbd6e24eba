from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicegraph.storage.file_cache import FileCache


def disk_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def cached_keys(cache: FileCache, keys: list[str]) -> list[str]:
    return [key for key in keys if key in cache]


@pytest.mark.parametrize(
    "max_bytes, steps, kept",
    [
        # Least recently written goes first.
        (10, [("put", "a", 4), ("put", "b", 4), ("put", "c", 4)], ["b", "c"]),
        # A hit makes a file the most recently used.
        (10, [("put", "a", 4), ("put", "b", 4), ("get", "a", 0), ("put", "c", 4)], ["a", "c"]),
        # So does writing it again.
        (10, [("put", "a", 4), ("put", "b", 4), ("put", "a", 4), ("put", "c", 4)], ["a", "c"]),
        # A bigger file evicts as many as it needs.
        (10, [("put", "a", 3), ("put", "b", 3), ("put", "c", 3), ("put", "d", 7)], ["c", "d"]),
        (10, [("put", "a", 10)], ["a"]),
        # Bigger than the whole cache: not cached, and nothing evicted for it.
        (10, [("put", "a", 4), ("put", "b", 11)], ["a"]),
        # A stale version must not outlive a new one that is too big to cache.
        (10, [("put", "a", 4), ("put", "a", 11)], []),
        (0, [("put", "a", 1), ("put", "b", 0)], []),
        (10, [("put", "a", 4), ("put", "b", 4), ("discard", "a", 0)], ["b"]),
    ],
)
def test_lru(tmp_path, max_bytes, steps, kept):
    cache = FileCache(tmp_path, max_bytes)
    for action, name, size in steps:
        key = f"tts_generations/{name}.wav"
        if action == "put":
            cache.put(key, name.encode() * size)
        elif action == "get":
            assert cache.get(key) == name.encode() * 4
        else:
            cache.discard(key)
    keys = [f"tts_generations/{name}.wav" for name in "abcd"]
    assert cached_keys(cache, keys) == [f"tts_generations/{name}.wav" for name in kept]
    assert cache.total_bytes == disk_bytes(tmp_path) <= max_bytes
    for key in keys:
        assert (cache.get(key) is not None) == (key in cache) == (tmp_path / key).is_file()


def test_hit_and_miss(tmp_path):
    cache = FileCache(tmp_path, 100)
    assert cache.get("tts_generations/a.wav") is None
    cache.put("tts_generations/a.wav", b"RIFF")
    assert cache.get("tts_generations/a.wav") == b"RIFF"
    assert "tts_generations/a.wav" in cache
    cache.discard("tts_generations/a.wav")
    cache.discard("tts_generations/a.wav")
    assert cache.get("tts_generations/a.wav") is None
    assert cache.total_bytes == 0


def test_a_file_removed_behind_its_back_is_a_miss(tmp_path):
    cache = FileCache(tmp_path, 100)
    cache.put("a.wav", b"RIFF")
    (tmp_path / "a.wav").unlink()
    assert cache.get("a.wav") is None
    assert cache.total_bytes == 0


def test_order_survives_a_restart(tmp_path):
    cache = FileCache(tmp_path, 12)
    for name in "abc":
        cache.put(f"x/{name}.wav", b"1234")
    cache.get("x/a.wav")  # order now b, c, a
    restarted = FileCache(tmp_path, 12)
    assert restarted.total_bytes == 12
    restarted.put("x/d.wav", b"1234")
    kept = cached_keys(restarted, ["x/a.wav", "x/b.wav", "x/c.wav", "x/d.wav"])
    assert kept == ["x/a.wav", "x/c.wav", "x/d.wav"]


def test_restart_with_a_lower_limit_evicts_the_oldest(tmp_path):
    cache = FileCache(tmp_path, 12)
    for name in "abc":
        cache.put(f"x/{name}.wav", b"1234")
    cache.get("x/a.wav")
    smaller = FileCache(tmp_path, 8)
    assert cached_keys(smaller, ["x/a.wav", "x/b.wav", "x/c.wav"]) == ["x/a.wav", "x/c.wav"]
    assert smaller.total_bytes == disk_bytes(tmp_path) == 8
    assert FileCache(tmp_path, 0).total_bytes == disk_bytes(tmp_path) == 0


def test_leftover_temp_files_are_removed(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / ".tmp-abc").write_bytes(b"half a file")
    cache = FileCache(tmp_path, 100)
    assert cache.total_bytes == 0
    assert not (tmp_path / "x" / ".tmp-abc").exists()


@pytest.mark.parametrize("key", ["../outside.wav", "x/../../outside.wav", "/etc/passwd", ".", ""])
def test_keys_cannot_escape_the_root(tmp_path, key):
    cache = FileCache(tmp_path / "cache", 100)
    with pytest.raises(ValueError, match="escapes"):
        cache.put(key, b"x")
    with pytest.raises(ValueError, match="escapes"):
        cache.get(key)
    assert not (tmp_path / "outside.wav").exists()


operations = st.lists(
    st.tuples(
        st.sampled_from(["put", "get", "discard"]),
        st.sampled_from(["a.wav", "b.wav", "x/c.wav", "x/d.wav", "y/e.wav"]),
        st.integers(min_value=0, max_value=40),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(max_bytes=st.integers(min_value=0, max_value=60), steps=operations)
def test_total_never_exceeds_the_limit_and_matches_the_disk(tmp_path_factory, max_bytes, steps):
    root = tmp_path_factory.mktemp("cache")
    cache = FileCache(root, max_bytes)
    for action, key, size in steps:
        if action == "put":
            cache.put(key, b"z" * size)
        elif action == "get":
            cache.get(key)
        else:
            cache.discard(key)
        assert cache.total_bytes == disk_bytes(root) <= max_bytes
    assert FileCache(root, max_bytes).total_bytes == cache.total_bytes
