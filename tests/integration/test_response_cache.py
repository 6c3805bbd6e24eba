"""The response cache over real HTTP: an identical request is answered from storage."""

import base64
import json
import uuid

import pytest

from tests.helpers.audio import decode
from tests.helpers.captions import parse_cues
from tests.helpers.response_cache import cached

pytestmark = pytest.mark.integration

_WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike oscar papa quebec".split()


def unique_text() -> str:
    # Words, not digits: normalisation would spell digits out anyway.
    tag = " ".join(_WORDS[int(c, 16)] for c in uuid.uuid4().hex[:10])
    return f"The cache test says {tag}. A second sentence gives the captions two cues!"


def counts(client) -> dict:
    return client.get("/health").json()["response_cache"]


def speak(client, **body):
    response = client.post("/v1/tts", json=body)
    assert response.status_code == 200, response.text
    return response


def test_an_identical_request_is_a_hit_with_the_same_audio(client, service):
    text = unique_text()
    before = counts(client)
    assert before["enabled"] is True

    first = speak(client, text=text)
    assert first.headers["x-cache"] == "miss"
    audio, sidecar = cached(service, text)
    second = speak(client, text=text)
    assert second.headers["x-cache"] == "hit"
    assert second.content == first.content == audio.read_bytes()
    assert second.headers["x-audio-duration"] == first.headers["x-audio-duration"]
    assert second.headers["x-chunk-count"] == first.headers["x-chunk-count"]
    assert json.loads(sidecar.read_bytes())["format"] == "wav"

    after = counts(client)
    if service.settings.ingress.num_replicas == 1:
        assert (after["hits"], after["misses"]) == (before["hits"] + 1, before["misses"] + 1)
    else:  # each replica counts its own; /health reaches one of them
        assert after["hits"] + after["misses"] >= 1


@pytest.mark.parametrize(
    "change",
    [{"speed": 1.25}, {"format": "mp3"}, {"voice": "deep"}, {"language": "fr"}, {"normalize": False}],
)
def test_any_other_input_is_a_miss(client, service, change):
    text = unique_text()
    speak(client, text=text)
    cached(service, text)
    assert speak(client, text=text, **change).headers["x-cache"] == "miss"
    assert speak(client, text=text).headers["x-cache"] == "hit"


def test_a_hit_still_gives_captions_and_saves(client, service):
    text = unique_text()
    original = speak(client, text=text)
    cached(service, text)

    # Captions time each word: such an entry is kept apart, with its captions.
    first = speak(client, text=text, captions="vtt")
    assert first.headers["x-cache"] == "miss"
    cached(service, text, timed=True)
    captioned = speak(client, text=text, captions="vtt")
    assert captioned.headers["x-cache"] == "hit"
    assert captioned.json()["captions"] == first.json()["captions"]
    body = captioned.json()
    data = base64.b64decode(body["audio_base64"])
    assert data == base64.b64decode(first.json()["audio_base64"])
    pcm, rate = decode(data)
    cues = parse_cues(body["captions"], ".")
    assert len(cues) == 2 and cues[0][0] == 0
    assert cues[-1][1] == pytest.approx(len(pcm) / rate, abs=0.0015)

    saved = speak(client, text=text, save=True)
    assert saved.headers["x-cache"] == "hit"
    stored = saved.json()
    assert stored["path"].startswith("tts_generations/TTS_voice_default_")
    assert (service.storage_root / stored["path"]).read_bytes() == original.content
    assert stored["duration_s"] == pytest.approx(float(original.headers["x-audio-duration"]), abs=1e-3)
    assert len(stored["chunks"]) == int(original.headers["x-chunk-count"])


def test_the_openai_route_is_served_from_the_cache_too(client, service):
    body = {"model": "tts-1", "input": unique_text(), "voice": "default", "response_format": "mp3"}
    first = client.post("/v1/audio/speech", json=body)
    assert first.status_code == 200 and first.headers["x-cache"] == "miss"
    cached_audio, _ = cached(service, body["input"], "mp3")
    second = client.post("/v1/audio/speech", json=body)
    assert second.headers["x-cache"] == "hit" and second.content == first.content == cached_audio.read_bytes()
