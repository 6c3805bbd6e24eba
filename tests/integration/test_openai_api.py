"""POST /v1/audio/speech through the official `openai` client pointed at the service."""

import numpy as np
import openai
import pytest

from tests.audio import decode, ffmpeg_decode

pytestmark = pytest.mark.integration

SENTENCE = "The quick brown fox jumps over the lazy dog while the band plays on."


@pytest.fixture(scope="module")
def oai(service):
    # Any key: the service has no auth of its own (put it behind your gateway).
    with openai.OpenAI(base_url=f"{service.url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def seconds(data: bytes) -> float:
    return len(ffmpeg_decode(data)) / 22050


def test_default_is_mp3_speech(oai):
    response = oai.audio.speech.create(model="tts-1", voice="default", input=SENTENCE)
    assert response.response.headers["content-type"] == "audio/mpeg"
    assert 2.5 < seconds(response.content) < 8


@pytest.mark.parametrize("fmt, content_type", [
    ("opus", "audio/ogg; codecs=opus"),
    ("aac", "audio/aac"),
    ("flac", "audio/flac"),
    ("wav", "audio/wav"),
    ("pcm", "audio/L16; rate=22050; channels=1"),
])
def test_every_response_format(oai, fmt, content_type):
    response = oai.audio.speech.create(model="tts-1", voice="bright", input=SENTENCE, response_format=fmt)
    assert response.response.headers["content-type"] == content_type
    data = response.content
    if fmt == "pcm":
        duration = len(data) / 2 / 22050
    elif fmt in ("wav", "flac"):
        pcm, rate = decode(data)
        duration = len(pcm) / rate
    else:
        duration = seconds(data)
    assert 2.5 < duration < 8


def test_speed_changes_the_length(oai):
    normal = oai.audio.speech.create(model="tts-1", voice="default", input=SENTENCE, response_format="wav")
    fast = oai.audio.speech.create(model="tts-1", voice="default", input=SENTENCE, response_format="wav", speed=1.8)
    assert len(decode(fast.content)[0]) < 0.75 * len(decode(normal.content)[0])


def test_streaming_with_the_client(oai):
    with oai.audio.speech.with_streaming_response.create(
        model="tts-1", voice="default", input=SENTENCE * 6, response_format="pcm", extra_body={"stream": True}
    ) as response:
        pieces = list(response.iter_bytes())
    pcm = np.frombuffer(b"".join(pieces), dtype="<i2")
    assert len(pcm) / 22050 > 15


def test_a_cloned_voice_id_works(oai, client, service):
    from tests.audio import wav_bytes
    from voicegraph.engines.espeak import EspeakEngine

    reference = EspeakEngine().synthesize(SENTENCE * 2, "deep", "en-us", 1.0)
    created = client.post("/v1/voices", files={"file": ("r.wav", wav_bytes(reference, 22050))}, data={"name": "oai clone"})
    assert created.status_code == 201, created.text
    try:
        response = oai.audio.speech.create(model="tts-1", voice="oai_clone", input=SENTENCE, response_format="wav")
        assert len(decode(response.content)[0]) / 22050 > 2
    finally:
        client.delete("/v1/voices/oai_clone")


@pytest.mark.parametrize("kwargs, code", [
    ({"voice": "alloy"}, "unknown_voice"),
    ({"response_format": "ogg"}, "unsupported_format"),
    ({"speed": 4.0}, "speed_out_of_range"),
    ({"input": " "}, "empty_text"),
])
def test_errors_come_in_openais_shape(oai, kwargs, code):
    arguments = {"model": "tts-1", "voice": "default", "input": SENTENCE, **kwargs}
    with pytest.raises(openai.UnprocessableEntityError) as raised:
        oai.audio.speech.create(**arguments)
    error = raised.value.body
    assert error["code"] == code and error["type"] == "invalid_request_error"
    assert error["message"] and "param" in error


def test_missing_field_is_an_openai_error(service):
    import httpx

    response = httpx.post(f"{service.url}/v1/audio/speech", json={"model": "tts-1", "voice": "default"})
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "input" in response.json()["error"]["message"]
