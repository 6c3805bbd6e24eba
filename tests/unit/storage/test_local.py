import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from voicegraph.audio.stitching import StitchedAudio
from voicegraph.core.errors import NotFoundError
from voicegraph.storage.layout import generation_key, is_slug, slugify
from voicegraph.storage.local import LocalStorage
from voicegraph.storage.service import StorageService


@pytest.mark.parametrize(
    "name, slug",
    [
        ("Alice", "alice"),
        ("Mary Jane O'Neil", "mary_jane_o_neil"),
        ("Zoë Ünïcödé", "zoe_unicode"),
        ("../../etc/passwd", "etc_passwd"),
        ("a/b\\c", "a_b_c"),
        ("...", ""),
        ("日本語", "ribenyu"),
        ("Привет мир", "privet_mir"),
        ("🎤", "microphone"),
        ("x" * 200, "x" * 64),
    ],
)
def test_slugify(name, slug):
    assert slugify(name) == slug


def test_generation_key_follows_the_layout():
    moment = datetime(2026, 11, 21, 9, 5, 3, tzinfo=timezone.utc)
    assert generation_key("Bright", "mp3", moment) == "tts_generations/TTS_voice_bright_20261121_090503.mp3"
    assert generation_key("!!!", "wav", moment) == "tts_generations/TTS_voice_unnamed_20261121_090503.wav"


def test_write_is_atomic_and_never_overwrites(tmp_path):
    storage = LocalStorage(tmp_path)
    first = storage.write_new("tts_generations/a.wav", b"one", "audio/wav")
    second = storage.write_new("tts_generations/a.wav", b"two", "audio/wav")
    assert (first.key, second.key) == ("tts_generations/a.wav", "tts_generations/a_2.wav")
    assert (tmp_path / first.key).read_bytes() == b"one"
    assert (tmp_path / second.key).read_bytes() == b"two"
    assert second.url == (tmp_path / second.key).resolve().as_uri()
    assert sorted(p.name for p in (tmp_path / "tts_generations").iterdir()) == ["a.wav", "a_2.wav"]


def test_keys_cannot_escape_the_root(tmp_path):
    with pytest.raises(ValueError, match="escapes"):
        LocalStorage(tmp_path / "root").write_new("../outside.wav", b"x", "audio/wav")
    assert not (tmp_path / "outside.wav").exists()


def stitched(data: bytes, fmt: str = "wav") -> StitchedAudio:
    return StitchedAudio(data, fmt, f"audio/{fmt}", 22050, 1.0, (1.0,))


def test_concurrent_saves_get_unique_names(tmp_path):
    service = StorageService(LocalStorage(tmp_path))
    payloads = [f"audio {i}".encode() for i in range(40)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        stored = list(pool.map(lambda data: service.stage(stitched(data), "Alice"), payloads))
    assert len({s.key for s in stored}) == 40
    for item, data in zip(stored, payloads):
        assert re.fullmatch(r"tts_generations/TTS_voice_alice_\d{8}_\d{6}(_\d+)?\.wav", item.key)
        assert (tmp_path / item.key).read_bytes() == data
    assert not list(tmp_path.rglob(".tmp-*"))


def test_concurrent_processes_get_unique_names(tmp_path):
    """Two StorageActor replicas are two processes writing to one folder."""
    script = (
        "import sys; from pathlib import Path; from voicegraph.storage.local import LocalStorage\n"
        "s = LocalStorage(Path(sys.argv[1]))\n"
        "print('\\n'.join(s.write_new('g/x.wav', sys.argv[2].encode() * 3, 'audio/wav').key for _ in range(30)))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path), tag], stdout=subprocess.PIPE, text=True)
        for tag in "ab"
    ]
    keys = [line for proc in procs for line in proc.communicate(timeout=60)[0].split()]
    assert len(keys) == 60 and len(set(keys)) == 60
    contents = {(tmp_path / key).read_bytes() for key in keys}
    assert contents == {b"aaa", b"bbb"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("narrator", True),
        ("deep_2", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("", False),
        ("Narrator", False),
        ("a\x00b", False),
        ("../etc", False),
        ("zoë", False),
    ],
)
def test_is_slug(text, expected):
    assert is_slug(text) is expected


def test_find_answers_none_for_a_missing_key_where_get_raises(tmp_path):
    service = StorageService(LocalStorage(tmp_path))
    assert service.find("tts_cache/nothing.json") is None
    with pytest.raises(NotFoundError, match="nothing is stored at tts_cache/nothing.json"):
        service.get("tts_cache/nothing.json")
    service.put("tts_cache/some.json", b"{}", "application/json")
    assert service.find("tts_cache/some.json") == service.get("tts_cache/some.json") == b"{}"
