"""OpenAI's speech API through the official `openai` client pointed at the service."""

import base64
import json

import httpx
import numpy as np
import openai
import pytest

from tests.helpers.audio import decode, ffmpeg_decode, wav_bytes
from tests.integration.conftest import API_KEYS
from voicegraph.engines.espeak import EspeakEngine

pytestmark = pytest.mark.integration

SENTENCE = "The quick brown fox jumps over the lazy dog while the band plays on."
RATE = 22050


@pytest.fixture(scope="module")
def oai(service):
    # Any key: API keys are off in this service (see test_api_keys.py for them on).
    with openai.OpenAI(base_url=f"{service.url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def seconds(data: bytes) -> float:
    return len(ffmpeg_decode(data)) / RATE


def speech_events(oai, **arguments) -> tuple[str, list[dict]]:
    """The response's content type and its server-sent events, decoded."""
    with oai.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="default", stream_format="sse", **arguments
    ) as response:
        content_type = response.headers["content-type"]
        lines = list(response.iter_lines())
    return content_type, [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]


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
        duration = len(data) / 2 / RATE
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
    assert len(pcm) / RATE > 15


def samples(data: bytes, fmt: str) -> int:
    if fmt == "pcm":
        return len(data) // 2
    return len(ffmpeg_decode(data))


# A streamed MP3 cannot carry the header with which the file tells a decoder
# to drop LAME's delay (1105 samples): decoded, the stream is that much longer.
STREAM_EXTRA_SAMPLES = {"pcm": 0, "wav": 0, "mp3": 1105}


@pytest.mark.parametrize("fmt, extra", [("pcm", {}), ("wav", {"stream": True}), ("mp3", {})])
def test_sse_deltas_reassemble_into_the_requested_audio(oai, fmt, extra):
    text = SENTENCE * 7  # two chunks, so the audio comes in several deltas
    content_type, events = speech_events(oai, input=text, response_format=fmt, extra_body=extra)
    assert content_type.startswith("text/event-stream")
    *deltas, done = events
    assert [event["type"] for event in deltas] == ["speech.audio.delta"] * len(deltas)
    assert len(deltas) > 1  # sent as it was made, not in one piece
    assert done == {
        "type": "speech.audio.done",
        "usage": {"input_tokens": len(text), "output_tokens": 0, "total_tokens": len(text)},
    }
    streamed = b"".join(base64.b64decode(event["audio"]) for event in deltas)
    if fmt == "wav":
        assert streamed[:4] == b"RIFF"  # the deltas are pieces of one file, header first

    whole = oai.audio.speech.create(model="gpt-4o-mini-tts", voice="default", input=text, response_format=fmt)
    expected = samples(whole.content, fmt) + STREAM_EXTRA_SAMPLES[fmt]
    assert expected > 20 * RATE
    # Not the same samples: eSpeak's length varies by up to ~50 ms a chunk from
    # one synthesis to the next, and the whole file may come from the response
    # cache, i.e. from another synthesis than the stream's. A lost or doubled
    # delta would be seconds.
    assert abs(samples(streamed, fmt) - expected) <= 0.1 * RATE, (samples(streamed, fmt), expected)


def test_a_format_that_cannot_stream_is_refused_before_any_event(oai):
    with pytest.raises(openai.BadRequestError) as raised:
        speech_events(oai, input=SENTENCE, response_format="flac")
    assert raised.value.body["code"] == "unsupported_format"
    assert raised.value.body["param"] == "response_format"


def test_instructions_and_a_voice_object_are_accepted(oai):
    response = oai.audio.speech.create(
        model="gpt-4o-mini-tts", voice={"id": "bright"}, input=SENTENCE, response_format="wav",
        instructions="Speak in a cheerful and positive tone.",
    )
    assert 2.5 < len(decode(response.content)[0]) / RATE < 8


def test_models_list_names_the_engine_and_openais_names(oai, client):
    engine_model = client.get("/health").json()["model"]
    models = oai.models.list().data
    assert [model.id for model in models] == [engine_model, "tts-1", "tts-1-hd", "gpt-4o-mini-tts"]
    assert {(model.object, model.owned_by) for model in models} == {("model", "voicegraph")}


def openai_voices(oai) -> dict[str, dict]:
    listing = oai.get("/audio/voices", cast_to=httpx.Response).json()
    return {voice["id"]: voice for voice in listing["voices"]}


def test_voices_list_has_the_presets(oai, client):
    presets = {voice["id"] for voice in client.get("/v1/voices").json()["voices"] if voice["kind"] == "preset"}
    voices = openai_voices(oai)
    assert presets <= set(voices) and "bright" in presets
    assert voices["bright"]["name"] and voices["bright"]["kind"] == "preset"


def test_a_cloned_voice_is_listed_and_speaks(oai, client):
    reference = EspeakEngine().synthesize(SENTENCE * 2, "deep", "en-us", 1.0)
    created = client.post("/v1/voices", files={"file": ("r.wav", wav_bytes(reference, RATE))}, data={"name": "oai clone"})
    assert created.status_code == 201, created.text
    try:
        listed = openai_voices(oai)["oai_clone"]
        assert (listed["name"], listed["kind"], listed["language"]) == ("oai clone", "cloned", "en-us")
        response = oai.audio.speech.create(model="tts-1", voice="oai_clone", input=SENTENCE, response_format="wav")
        assert len(decode(response.content)[0]) / RATE > 2
    finally:
        client.delete("/v1/voices/oai_clone")
    assert "oai_clone" not in openai_voices(oai)


@pytest.mark.parametrize("kwargs, code, param", [
    ({"input": ""}, "empty_text", "input"),
    ({"input": " "}, "empty_text", "input"),
    ({"voice": "nobody-here"}, "unknown_voice", "voice"),
    ({"response_format": "ogg"}, "unsupported_format", "response_format"),
    ({"speed": 4.0}, "speed_out_of_range", "speed"),
])
def test_bad_input_is_openais_bad_request(oai, kwargs, code, param):
    arguments = {"model": "tts-1", "voice": "default", "input": SENTENCE, **kwargs}
    with pytest.raises(openai.BadRequestError) as raised:
        oai.audio.speech.create(**arguments)
    assert raised.value.status_code == 400
    error = raised.value.body
    assert (error["code"], error["type"], error["param"]) == (code, "invalid_request_error", param)
    assert error["message"]


def test_a_missing_field_is_openais_bad_request(oai):
    with pytest.raises(openai.BadRequestError) as raised:
        oai.post("/audio/speech", body={"model": "tts-1", "voice": "default"}, cast_to=httpx.Response)
    assert raised.value.body["type"] == "invalid_request_error"
    assert "input" in raised.value.body["message"]


def test_the_schema_documents_400_and_no_422(client):
    paths = client.get("/openapi.json").json()["paths"]
    speech = paths["/v1/audio/speech"]["post"]["responses"]
    assert "400" in speech and "422" not in speech
    assert speech["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/OpenAIErrorResponse")
    for path in ("/v1/audio/voices", "/v1/models"):
        assert "422" not in paths[path]["get"]["responses"], path


def test_a_wrong_key_gets_openais_error_on_every_openai_route(keyed_service):
    wrong = openai.OpenAI(base_url=f"{keyed_service.url}/v1", api_key="sk-wrong", max_retries=0)
    good = openai.OpenAI(base_url=f"{keyed_service.url}/v1", api_key=API_KEYS["app"], max_retries=0)
    for call in (wrong.models.list, lambda: wrong.get("/audio/voices", cast_to=httpx.Response)):
        with pytest.raises(openai.AuthenticationError) as raised:
            call()
        assert (raised.value.body["code"], raised.value.body["type"]) == ("invalid_api_key", "invalid_request_error")
    assert good.models.list().data
