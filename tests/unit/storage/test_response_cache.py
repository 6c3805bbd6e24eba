"""The response cache's key: every input that shapes the audio is in it, nothing else."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from voicegraph.audio.stitching import StitchedAudio
from voicegraph.core.settings import Settings
from voicegraph.engines.base import ClonedVoice, Sampling
from voicegraph.storage.layout import response_cache_keys
from voicegraph.storage.response_cache import (
    cache_key,
    from_sidecar,
    sidecar,
    voice_fingerprint,
)


def clone(stats=(110.0, 90.0, 140.0, 4.2), **fields) -> ClonedVoice:
    values = {
        "engine": "espeak",
        "model": "espeak-ng-1.52",
        "method": "espeak-parametric",
        "arrays": {"reference_stats": np.array(stats, dtype=np.float32)},
        "params": {"variant": "m3", "pitch": 40, "range": 50, "rate": 170},
    }
    return ClonedVoice(**{**values, **fields})


BASE = {
    "text": "Hello there. How are you?",
    "normalize": True,
    "voice": "default",
    "language": "en-us",
    "speed": 1.0,
    "format_name": "mp3",
    "sampling": Sampling(),
    "engine": "espeak",
    "model": "espeak-ng-1.52",
    "chunk_chars": 400,
    "settings": Settings(),
}


def key(**changes) -> str:
    return cache_key(**{**BASE, **changes})


@pytest.mark.parametrize(
    "changes",
    [
        {"text": "Hello there. How are you!"},
        {"normalize": False},
        {"voice": "deep"},
        {"voice": clone()},
        {"language": "en-gb"},
        {"speed": 1.25},
        {"format_name": "wav"},
        {"sampling": Sampling(temperature=0.5)},
        {"sampling": Sampling(top_k=20)},
        {"engine": "xtts"},
        {"model": "espeak-ng-1.53"},
        {"chunk_chars": 250},
        {"settings": Settings(pause_ms=250)},
        {"settings": Settings(fade_ms=4)},
        {"settings": Settings(loudness="lufs")},
        {"settings": Settings(peak_dbfs=-3)},
        {"settings": Settings(target_lufs=-20)},
        {"settings": Settings(mp3_bitrate="192k")},
    ],
    ids=lambda changes: ",".join(f"{k}={v!r}"[:40] for k, v in changes.items()),
)
def test_each_input_changes_the_key(changes):
    assert key(**changes) != key()


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"speed": 1},  # the same speed, as JSON would send it
        {"settings": Settings(opus_bitrate="96k")},  # another format's bitrate
        {"settings": Settings(request_timeout_s=10, max_text_chars=500)},  # limits, not audio
        {"voice": "default", "sampling": Sampling()},
    ],
)
def test_identical_inputs_give_the_same_key(changes):
    assert key(**changes) == key()


def test_xtts_settings_count_only_on_xtts():
    xtts = {"engine": "xtts", "model": "tiny"}
    assert key(**xtts, settings=Settings(xtts={"dtype": "float16"})) != key(**xtts)
    assert key(settings=Settings(xtts={"dtype": "float16"})) == key()


def test_a_voice_cloned_again_under_the_same_id_changes_the_key():
    first, again = clone(), clone(stats=(180.0, 150.0, 230.0, 4.2))
    assert key(voice=first) == key(voice=clone())
    assert key(voice=first) != key(voice=again)
    assert voice_fingerprint(first) != voice_fingerprint(clone(params={**first.params, "pitch": 41}))
    assert voice_fingerprint(first) != voice_fingerprint(clone(method="other"))
    # Same bytes, other shape or dtype: another voice.
    flat = clone(arrays={"reference_stats": np.zeros(4, np.float32)})
    square = clone(arrays={"reference_stats": np.zeros((2, 2), np.float32)})
    wide = clone(arrays={"reference_stats": np.zeros(2, np.float64)})
    assert len({voice_fingerprint(v) for v in (flat, square, wide)}) == 3


def test_a_preset_named_like_a_fingerprint_is_not_a_clone():
    assert voice_fingerprint(voice_fingerprint(clone())) != voice_fingerprint(clone())


def test_keys_are_sha256_hex_under_tts_cache():
    digest = key()
    # Lowercase hex only: the key is a file name in the bucket and on disk.
    assert re.fullmatch(r"[0-9a-f]{64}", digest), digest
    assert response_cache_keys(digest, "mp3") == (f"tts_cache/{digest}.mp3", f"tts_cache/{digest}.json")


# Two voices, so the key holds a mapping whose order must not matter.
XTTS = {"voice_clips": {"narrator": ["a.wav", "b.wav"], "deep": ["c.wav"]}}
# key(text="Hello there.", engine="xtts", model="tiny", settings=Settings(xtts=XTTS)), in a new interpreter.
KEY_IN_A_NEW_PROCESS = """
from voicegraph.core.settings import Settings
from voicegraph.engines.base import Sampling
from voicegraph.storage.response_cache import cache_key

print(cache_key(text="Hello there.", normalize=True, voice="default", language="en-us", speed=1.0,
                format_name="mp3", sampling=Sampling(), engine="xtts", model="tiny", chunk_chars=400,
                settings=Settings(xtts={xtts!r})))
"""


def test_a_key_is_the_same_in_every_process():
    """Every replica, and the service after a restart, finds what another wrote:
    nothing salted per process (str hashes, set order) is in a key."""
    keys = {
        subprocess.run([sys.executable, "-c", KEY_IN_A_NEW_PROCESS.format(xtts=XTTS)],
                       env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True, check=True
                       ).stdout.strip()
        for seed in ("1", "2")
    }
    assert keys == {key(text="Hello there.", engine="xtts", model="tiny", settings=Settings(xtts=XTTS))}


AUDIO = StitchedAudio(
    data=b"RIFF fake audio bytes",
    format="pcm",
    content_type="audio/L16; rate=22050; channels=1",
    sample_rate=22050,
    duration_s=3.25,
    chunk_durations_s=(1.5, 1.57),
)
CHUNKS = ("Hello there.", "How are you?")


def test_sidecar_round_trip():
    entry = from_sidecar(sidecar(AUDIO, CHUNKS), AUDIO.data)
    assert (entry.audio, entry.chunks, entry.captions) == (AUDIO, CHUNKS, None)
    captions = [{"start": 0.0, "end": 1.0, "text": "Hi 5.", "words": [{"word": "Hi", "start": 0.0, "end": 0.4}]}]
    timed = from_sidecar(sidecar(AUDIO, CHUNKS, captions, False), AUDIO.data)
    assert (timed.captions, timed.words_estimated) == (captions, False)


def test_audio_that_is_not_the_sidecars_is_refused():
    with pytest.raises(ValueError):
        from_sidecar(sidecar(AUDIO, CHUNKS), AUDIO.data + b"other writer")
    with pytest.raises(ValueError):
        from_sidecar(sidecar(AUDIO, CHUNKS[:1]), AUDIO.data)
