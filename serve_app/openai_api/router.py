"""OpenAI's speech API for its clients: `POST /v1/audio/speech`,
`GET /v1/audio/voices`, `GET /v1/models`.

A thin translation onto the native path: the same validation, the same graph,
the same streaming. Errors on these routes come in OpenAI's shape and
statuses (serving.openai_error_response, used by serve_app.errors.error_response).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from serve_app.access import charge_characters
from serve_app.deadlines import client_deadline
from serve_app.dependencies import get_tts, get_voices
from serve_app.error_schemas import GRAPH, error_responses
from serve_app.openai_api.protocol import ModelList, OpenAIErrorResponse, OpenAIVoiceList, SpeechRequest
from serve_app.openai_api.serving import model_list, openai_voices, speech_event_stream, speech_params
from serve_app.tts.serving import TTSServing
from serve_app.tts.streaming import speech_stream
from serve_app.voices.serving import VoicesServing

router = APIRouter(tags=["openai"])

# FastAPI documents a 422 on every route with a body or parameters, and no
# 422 comes from these (openai_error_response answers 400): None drops it,
# as FastAPI leaves None out of the schema it writes.
_NO_422 = {"responses": {"422": None}}

_SPEECH_RESPONSES = {
    **error_responses(413, 415, *GRAPH, model=OpenAIErrorResponse),
    400: {
        "model": OpenAIErrorResponse,
        "description": "The body is not valid JSON, or the request cannot be done as asked (empty input, "
        "unknown voice, bad speed or format, a missing field): OpenAI's invalid_request_error.",
    },
    200: {
        "description": "The audio in response_format, streamed with stream; with stream_format sse, "
        "`speech.audio.delta` events then `speech.audio.done`.",
        "content": {
            "audio/mpeg": {},
            "audio/ogg": {},
            "audio/aac": {},
            "audio/flac": {},
            "audio/wav": {},
            "audio/L16": {},
            "text/event-stream": {},
        },
    },
}


@router.post("/v1/audio/speech", response_class=Response, responses=_SPEECH_RESPONSES, openapi_extra=_NO_422)
async def create_speech(
    body: SpeechRequest,
    request: Request,
    tts: TTSServing = Depends(get_tts),
    deadline: float | None = Depends(client_deadline),
):
    await charge_characters(request, len(body.input))
    # `instructions` has nowhere to go: no engine here takes a style prompt.
    params = speech_params(body, await tts.catalog(), tts.settings)
    if body.stream_format == "sse":
        return speech_event_stream(await speech_stream(tts, params, deadline), len(body.input))
    if body.stream:
        return await speech_stream(tts, params, deadline)
    job = await tts.validate(params)
    speech = await tts.synthesize(job, deadline=deadline)
    headers = {"X-Engine": job.engine}
    if speech.cache_hit is not None:
        headers["X-Cache"] = "hit" if speech.cache_hit else "miss"
    return Response(speech.audio.data, media_type=speech.audio.content_type, headers=headers)


def _get(path: str, response_model: type, *error_statuses: int):
    return router.get(
        path,
        response_model=response_model,
        responses=error_responses(*error_statuses, model=OpenAIErrorResponse),
        openapi_extra=_NO_422,
    )


@_get("/v1/audio/voices", OpenAIVoiceList, 503)
async def list_voices(voices: VoicesServing = Depends(get_voices)) -> OpenAIVoiceList:
    return openai_voices(await voices.list())


@_get("/v1/models", ModelList, 503)
async def list_models(tts: TTSServing = Depends(get_tts)) -> ModelList:
    return model_list(await tts.catalog(), tts.settings)
