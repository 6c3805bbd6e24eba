"""The voice library: ids from names, the packed profile format, the caches, and
VoiceProfiles itself over a real local StorageService, eSpeak and a loopback HTTP server."""

import asyncio
import os
import re
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from tests.helpers.audio import decode, wav_bytes
from tests.unit.voices.local_graph import LocalStorageCalls, LocalSynthesizerCalls
from voicegraph.core.errors import (
    BuiltinVoiceError,
    InvalidVoiceNameError,
    NotFoundError,
    UrlRefusedError,
    VoiceExistsError,
)
from voicegraph.core.settings import Settings
from voicegraph.engines.espeak import EspeakEngine
from voicegraph.engines.piper import PiperEngine
from voicegraph.storage.layout import profile_keys
from voicegraph.storage.local import LocalStorage
from voicegraph.storage.service import StorageService
from voicegraph.voices.cloning import VoiceCloner
from voicegraph.voices.profiles import (
    LRU,
    MAX_VOICE_ID_CHARS,
    VOICE_ID_PATTERN,
    KeyedLocks,
    VoiceProfiles,
    pack_arrays,
    unpack_arrays,
    voice_id_for,
)

PRESETS = {"default", "deep"}


@pytest.mark.parametrize(
    "name, voice_id",
    [
        ("Alice", "alice"),
        ("  Mary Jane  ", "mary_jane"),
        ("Zoë", "zoe"),
        ("日本語の声", "ribenyunosheng"),
        ("../../etc/passwd", "etc_passwd"),
        ("Deep 2", "deep_2"),
    ],
)
def test_voice_ids_from_names(name, voice_id):
    assert voice_id_for(name, 64, PRESETS) == voice_id


@pytest.mark.parametrize(
    "name, error, hint",
    [
        ("", InvalidVoiceNameError, "empty"),
        ("   ", InvalidVoiceNameError, "empty"),
        ("x" * 65, InvalidVoiceNameError, "limit is 64"),
        ("?!...", InvalidVoiceNameError, "no letters or digits"),
        ("Deep", BuiltinVoiceError, "built-in"),
        ("DEFAULT!", BuiltinVoiceError, "built-in"),
    ],
)
def test_bad_names_are_refused(name, error, hint):
    with pytest.raises(error, match=hint):
        voice_id_for(name, 64, PRESETS)


def test_arrays_round_trip_through_one_flat_npy():
    rng = np.random.default_rng(0)
    arrays = {"gpt_cond_latent": rng.normal(size=(1, 32, 16)), "speaker_embedding": rng.normal(size=(1, 8, 1))}
    data, layout = pack_arrays(arrays)
    assert data[:6] == b"\x93NUMPY"  # a plain .npy, loadable without pickle
    assert layout == {"gpt_cond_latent": [1, 32, 16], "speaker_embedding": [1, 8, 1]}
    restored = unpack_arrays(data, layout)
    for name, array in arrays.items():
        np.testing.assert_allclose(restored[name], array.astype(np.float32))
    with pytest.raises(ValueError, match="expects"):
        unpack_arrays(data, {"gpt_cond_latent": [1, 32, 16]})


def test_the_lru_forgets_the_least_recently_used():
    cache = LRU(2)
    cache.remember("a", 1)
    cache.remember("b", 2)
    assert cache.lookup("a") == 1  # a is now the most recent
    cache.remember("c", 3)
    assert cache.lookup("b") is None and list(cache) == ["a", "c"]


def test_keyed_locks_serialise_one_key_and_are_dropped_after():
    locks = KeyedLocks()
    order = []

    async def worker(key, name):
        async with locks.hold(key):
            order.append(f"{name} in")
            await asyncio.sleep(0.01)
            order.append(f"{name} out")

    async def main():
        await asyncio.gather(worker("k", "first"), worker("k", "second"), worker("other", "third"))

    asyncio.run(main())
    assert order.index("first out") < order.index("second in")
    assert order.index("third in") < order.index("first out")  # other keys do not wait
    assert locks._locks == {}


# --- VoiceProfiles over a real local StorageService and eSpeak ---------------------

SENTENCE = "The quick brown fox jumps over the lazy dog while the band plays on."


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def reference_server(tmp_path):
    """A real HTTP server on loopback serving reference clips (with Last-Modified / 304)."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def reference_wav():
    return wav_bytes(EspeakEngine().synthesize(SENTENCE * 2, "deep", "en-us", 1.0), 22050)


@pytest.fixture
def library(tmp_path, reference_server):
    _, port = reference_server
    settings = Settings(storage_root=str(tmp_path / "data"), outbound={"allow": [f"127.0.0.1:{port}"]})
    storage = LocalStorageCalls(StorageService(LocalStorage(tmp_path / "data")))
    events = []
    library = VoiceProfiles(settings, storage, VoiceCloner(settings, {"espeak": LocalSynthesizerCalls()}), events.append)
    return library, storage, events


def run(coroutine):
    return asyncio.run(coroutine)


def test_save_get_list_sample_delete(library, reference_wav):
    voices, storage, events = library
    cloner = voices._cloner
    reference = run(cloner.clone(reference_wav, "en-us", "espeak"))
    record = run(voices.save("narrator", "Narrator", "warm", "en-us", reference, overwrite=False))
    assert (record.id, record.engine, events) == ("narrator", "espeak", ["clone_upload"])
    npy_key, json_key = profile_keys("narrator")
    assert storage.service.exists(npy_key) and storage.service.exists(json_key)
    assert storage.service.exists(record.sample_path)

    loaded_record, voice = run(voices.get("narrator"))
    assert loaded_record == record and voice.params == reference.voice.params
    assert [r.id for r in run(voices.list_records())] == ["narrator"]
    pcm, rate = decode(run(voices.sample("narrator")))
    assert len(pcm) / rate > 1.0

    run(voices.delete("narrator"))
    assert not run(voices.exists("narrator"))
    assert not storage.service.exists(record.sample_path)
    with pytest.raises(NotFoundError, match="GET /v1/voices"):
        run(voices.get("narrator"))


def test_a_saved_voice_is_served_from_the_cache(library, reference_wav):
    voices, storage, _ = library
    reference = run(voices._cloner.clone(reference_wav, "en-us", "espeak"))
    run(voices.save("cached", "Cached", "", "en-us", reference, overwrite=False))
    storage.reads.clear()
    run(voices.get("cached"))
    assert storage.reads == []


def test_an_existing_id_needs_overwrite_and_then_replaces_the_sample(library, reference_wav):
    voices, storage, _ = library
    reference = run(voices._cloner.clone(reference_wav, "en-us", "espeak"))
    first = run(voices.save("twice", "Twice", "", "en-us", reference, overwrite=False))
    with pytest.raises(VoiceExistsError, match="overwrite=true"):
        run(voices.save("twice", "Twice", "", "en-us", reference, overwrite=False))
    second = run(voices.save("twice", "Twice", "again", "en-us", reference, overwrite=True))
    assert second.description == "again" and second.sample_path != first.sample_path
    assert not storage.service.exists(first.sample_path)


def test_voice_url_is_cloned_once_then_revalidated(library, reference_server, reference_wav):
    voices, _, events = library
    folder, port = reference_server
    (folder / "ref.wav").write_bytes(reference_wav)
    url = f"http://127.0.0.1:{port}/ref.wav"

    first, cached = run(voices.from_url(url, "en-us", "espeak"))
    assert not cached and events == ["url_download", "clone_url"]
    again, cached = run(voices.from_url(url, "en-us", "espeak"))
    assert cached and again == first and events[-1] == "url_cache_hit"

    # A changed file (newer Last-Modified, other audio) is downloaded and cloned again.
    changed = wav_bytes(EspeakEngine().synthesize(SENTENCE * 2, "bright", "en-us", 1.0), 22050)
    (folder / "ref.wav").write_bytes(changed)
    later = time.time() + 5
    os.utime(folder / "ref.wav", (later, later))
    _, cached = run(voices.from_url(url, "en-us", "espeak"))
    assert not cached and events[-2:] == ["url_download", "clone_url"]


def test_voice_url_outside_the_allow_list_is_refused(library):
    voices, _, events = library
    with pytest.raises(UrlRefusedError, match="loopback"):
        run(voices.from_url("http://127.0.0.1:1/ref.wav", "en-us", "espeak"))
    assert events == []


@pytest.mark.parametrize("voice_id", ["a\x00b", "x" * 10_000, "../../etc/passwd", "Narrator"])
def test_ids_no_clone_can_have_are_not_found_without_touching_storage(library, voice_id):
    voices, storage, _ = library
    assert not run(voices.exists(voice_id))
    for call in (voices.get, voices.record, voices.sample, voices.delete):
        with pytest.raises(NotFoundError, match="no voice with id") as raised:
            run(call(voice_id))
        assert len(raised.value.message) < 200
    assert storage.reads == []


@pytest.mark.parametrize("engine_name", ["espeak", "piper"])
def test_every_built_in_voice_id_passes_the_http_check(engine_name):
    engine = EspeakEngine() if engine_name == "espeak" else PiperEngine(Settings(engine="piper"), num_threads=1)
    ids = [voice.id for voice in engine.info().voices]
    assert ids and all(re.fullmatch(VOICE_ID_PATTERN, i) and len(i) <= MAX_VOICE_ID_CHARS for i in ids), ids
