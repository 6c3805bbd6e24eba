"""What the OpenAI-compatible routes add to the native path: OpenAI's error
shape and statuses, its speech event stream, and its model and voice lists."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import datetime

from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.sse import EventSourceResponse, format_sse_event
from pydantic import BaseModel
from ray.exceptions import RayTaskError

from serve_app.openai_api.protocol import (
    Model,
    ModelList,
    OpenAIError,
    OpenAIErrorResponse,
    OpenAIVoice,
    OpenAIVoiceList,
    SpeechAudioDelta,
    SpeechAudioDone,
    SpeechRequest,
    SpeechStreamError,
    SpeechUsage,
)
from serve_app.tts.protocol import SpeechParams
from serve_app.version import version_info
from serve_app.voices.protocol import VoiceList
from voicegraph.core.errors import VoiceGraphError
from voicegraph.core.settings import Settings
from voicegraph.engines.catalog import EngineCatalog, engine_for_openai_model, qualified

logger = logging.getLogger("ray.serve")

# Paths whose errors come in OpenAI's shape: its clients call these.
OPENAI_PATHS = ("/v1/audio/", "/v1/models")

# The request field each of our codes is about, as OpenAI's `param` names it.
_PARAM_OF_CODE = {
    "empty_text": "input",
    "invalid_text": "input",
    "text_too_long": "input",
    "unknown_voice": "voice",
    "incompatible_voice": "voice",
    "unsupported_format": "response_format",
    "speed_out_of_range": "speed",
}


def openai_error(error: VoiceGraphError) -> OpenAIError:
    kind = "invalid_request_error" if error.status_code < 500 else "server_error"
    return OpenAIError(message=error.message, type=kind, param=_PARAM_OF_CODE.get(error.code), code=error.code)


def openai_error_response(error: VoiceGraphError) -> JSONResponse:
    # OpenAI answers a request it cannot do as asked with 400 (its clients raise
    # BadRequestError), where the native API says 422. The request id is in the
    # X-Request-ID header Serve's proxy adds to every response.
    status = 400 if error.status_code == 422 else error.status_code
    body = OpenAIErrorResponse(error=openai_error(error))
    return JSONResponse(body.model_dump(), status_code=status, headers=error.headers())


def _event(payload: BaseModel) -> bytes:
    return format_sse_event(data_str=payload.model_dump_json())


def _stream_failure(exc: Exception) -> VoiceGraphError:
    # A deployment's error arrives wrapped by Ray; the original carries the code.
    cause = exc.cause if isinstance(exc, RayTaskError) else exc
    if isinstance(cause, VoiceGraphError):
        return cause
    logger.exception("speech event stream failed")
    return VoiceGraphError("synthesis failed after the stream began; the X-Request-ID header names it in the logs")


async def speech_events(audio: AsyncIterator[bytes], characters: int) -> AsyncIterator[bytes]:
    """`audio`, the encoded stream, as OpenAI's speech events. Closing this
    (the client went away) closes `audio`, which cancels the synthesis behind it."""
    async with aclosing(audio):
        try:
            async for data in audio:
                yield _event(SpeechAudioDelta(audio=base64.b64encode(data).decode("ascii")))
        except Exception as exc:
            # The 200 is out: the failure can only be told in the stream, and
            # no `speech.audio.done` follows, so no client takes the audio for whole.
            yield _event(SpeechStreamError(error=openai_error(_stream_failure(exc))))
            return
    yield _event(SpeechAudioDone(usage=SpeechUsage(input_tokens=characters, total_tokens=characters)))


def speech_event_stream(audio: StreamingResponse, characters: int) -> EventSourceResponse:
    """The native audio stream (already validated, not started) sent as events."""
    headers = {name: value for name, value in audio.headers.items() if name != "content-type"}
    return EventSourceResponse(speech_events(audio.body_iterator, characters), headers=headers)


def _build_time(settings: Settings) -> int:
    built = version_info(settings.git_sha, settings.build_time)["build_time"]
    try:
        return int(datetime.fromisoformat(built).timestamp())
    except (TypeError, ValueError):
        return 0  # "unknown": neither the image nor git said


def model_list(catalog: EngineCatalog, settings: Settings) -> ModelList:
    """Each engine's model, then the OpenAI names the service answers to."""
    created = _build_time(settings)
    names = [info.model for info in catalog.infos()] + list(settings.openai.models)
    return ModelList(data=[Model(id=name, created=created, owned_by="voicegraph") for name in names])


def speech_params(body: SpeechRequest, catalog: EngineCatalog, settings: Settings) -> SpeechParams:
    """The native request for an OpenAI one. An OpenAI voice name (alloy,
    echo…) is spoken by the engine `model` maps to, in the voice
    `openai.voices` gives it there (the engine's default voice where none is
    given or offered); any other voice is one of ours, spoken by its engine."""
    voice = body.voice_id
    if voice in settings.openai.voices:
        info = engine_for_openai_model(body.model, settings.openai.models, catalog)
        mapped = settings.openai.voices[voice].get(info.engine)  # type: ignore[call-overload]
        voice = qualified(info.engine, mapped) if mapped in info.voice_ids() else None
        return SpeechParams(
            text=body.input, voice=voice, engine=info.engine, format=body.response_format, speed=body.speed
        )
    return SpeechParams(text=body.input, voice=voice, format=body.response_format, speed=body.speed)


def openai_voices(voices: VoiceList) -> OpenAIVoiceList:
    # A clone made by another engine or model cannot speak here: a client
    # offering voices to pick from should not offer it.
    return OpenAIVoiceList(
        voices=[
            OpenAIVoice(id=voice.id, name=voice.name, kind=voice.kind, language=voice.language)
            for voice in voices.voices
            if voice.usable
        ]
    )
