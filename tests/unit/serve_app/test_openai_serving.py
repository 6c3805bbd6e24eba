"""OpenAI's error answers and speech events, from real errors and real async generators."""

import asyncio
import base64
import json

import pytest

from serve_app.openai_api.serving import model_list, openai_error_response, speech_events
from voicegraph.core.errors import (
    AuthenticationError,
    EmptyTextError,
    InvalidRequestError,
    PayloadTooLargeError,
    RateLimitedError,
    SynthesisError,
)
from voicegraph.core.settings import Settings
from voicegraph.engines.catalog import EngineCatalog
from voicegraph.engines.espeak import EspeakEngine


@pytest.mark.parametrize("error, status, param, headers", [
    (EmptyTextError("text is empty"), 400, "input", {}),
    (InvalidRequestError("input: Field required"), 400, None, {}),
    (PayloadTooLargeError("too large"), 413, None, {}),
    (AuthenticationError("no API key"), 401, None, {"www-authenticate": "Bearer"}),
    (RateLimitedError("slow down", 2.5), 429, None, {"retry-after": "3"}),
])
def test_client_errors_keep_their_status_but_422_which_is_openais_400(error, status, param, headers):
    response = openai_error_response(error)
    assert response.status_code == status
    body = json.loads(response.body)
    assert body == {"error": {"message": error.message, "type": "invalid_request_error", "param": param, "code": error.code}}
    assert headers.items() <= dict(response.headers).items()


def test_a_server_error_is_openais_server_error():
    response = openai_error_response(SynthesisError("the engine failed"))
    assert response.status_code == 503
    assert json.loads(response.body)["error"]["type"] == "server_error"


def events_of(stream) -> list[dict]:
    async def collect():
        return [event async for event in stream]

    lines = b"".join(asyncio.run(collect())).decode().split("\n\n")
    return [json.loads(line.removeprefix("data: ")) for line in lines if line]


def test_a_failure_mid_stream_ends_with_an_error_event_and_no_done():
    async def audio():
        yield b"\x01\x02"
        raise SynthesisError("the engine failed on chunk 2")

    assert events_of(speech_events(audio(), characters=5)) == [
        {"type": "speech.audio.delta", "audio": base64.b64encode(b"\x01\x02").decode()},
        {
            "type": "error",
            "error": {
                "message": "the engine failed on chunk 2",
                "type": "server_error",
                "param": None,
                "code": "synthesis_failed",
            },
        },
    ]


def test_closing_the_events_closes_the_audio_at_once():
    # Closing the audio is what cancels the chunks still being synthesized.
    closed = []

    async def audio():
        try:
            yield b"a"
            yield b"b"
        finally:
            closed.append("audio")

    async def read_one_then_leave():
        events = speech_events(audio(), characters=2)
        await anext(events)
        await events.aclose()
        return list(closed)

    assert asyncio.run(read_one_then_leave()) == ["audio"]


@pytest.mark.parametrize("build_time, created", [("2026-11-01T10:00:00+00:00", 1793527200), ("unknown", 0)])
def test_models_are_dated_by_the_build_an_image_states(build_time, created):
    models = model_list(EngineCatalog([EspeakEngine().info()], "espeak"), Settings(engine="espeak", git_sha="abc", build_time=build_time))
    assert [(model.id, model.created) for model in models.data] == [
        ("espeak-ng-1.52", created), ("tts-1", created), ("tts-1-hd", created), ("gpt-4o-mini-tts", created),
    ]


def _engine(name, voices):
    from voicegraph.engines.base import EngineInfo, VoiceInfo

    return EngineInfo(name, f"{name}-model", 22050, ("en-us",), tuple(VoiceInfo(v, v, "") for v in voices), "en-us")


SIDE_BY_SIDE = EngineCatalog(
    [_engine("piper", ("en_us-joe-medium",)), _engine("espeak", ("default", "deep")), _engine("xtts", ("Viktor Eka",))],
    "piper",
)


@pytest.mark.parametrize(
    "model, voice, engine, expected_voice",
    [
        ("tts-1", "alloy", "piper", None),  # Piper has no mapping: its default voice
        ("tts-1-hd", "echo", "xtts", "xtts/Viktor Eka"),
        ("tts-1-hd", "alloy", "xtts", None),  # mapped to a speaker this model lacks: the default voice
        ("espeak-model", "onyx", "espeak", "espeak/deep"),
        ("tts-1-hd", "espeak/deep", None, "espeak/deep"),  # one of ours: its own engine, whatever the model
        ("tts-1", "my-clone", None, "my-clone"),
    ],
)
def test_openai_names_become_an_engine_and_a_voice(model, voice, engine, expected_voice):
    from serve_app.openai_api.protocol import SpeechRequest
    from serve_app.openai_api.serving import speech_params

    params = speech_params(SpeechRequest(model=model, input="Hi.", voice=voice), SIDE_BY_SIDE, Settings())
    assert (params.engine, params.voice, params.text) == (engine, expected_voice, "Hi.")
