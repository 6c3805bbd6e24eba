"""The voice library's plain logic: ids from names, the packed profile format, the caches."""

import asyncio

import numpy as np
import pytest

from deployments.profile import (
    LRU,
    KeyedLocks,
    pack_arrays,
    unpack_arrays,
    voice_id_for,
)
from serve_app.errors import BuiltinVoiceError, InvalidVoiceNameError

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
