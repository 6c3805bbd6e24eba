"""`POST /v1/audio/speech`, compatible with OpenAI's API and its clients.

A thin translation onto the native path: the same validation, the same graph,
the same streaming. Errors on these routes come in OpenAI's shape (see
ingress.error_response).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from serve_app.access import charge_characters
from serve_app.error_schemas import BODY, GRAPH, error_responses
from serve_app.openai_api.protocol import OpenAIErrorResponse, SpeechRequest
from serve_app.tts.protocol import SpeechParams
from serve_app.tts.router import get_tts, speech_stream
from serve_app.tts.serving import TTSServing
from voicegraph.core.errors import InvalidRequestError

OPENAI_PREFIX = "/v1/audio/"

router = APIRouter(tags=["openai"])


@router.post(
    "/v1/audio/speech", response_class=Response, responses=error_responses(*BODY, *GRAPH, model=OpenAIErrorResponse)
)
async def create_speech(body: SpeechRequest, request: Request, tts: TTSServing = Depends(get_tts)):
    await charge_characters(request, len(body.input))
    if body.stream_format == "sse":
        raise InvalidRequestError("stream_format 'sse' is not supported; use 'audio'")
    params = SpeechParams(text=body.input, voice=body.voice, format=body.response_format, speed=body.speed)
    if body.stream:
        return await speech_stream(tts, params)
    job = await tts.validate(params)
    speech = await tts.synthesize(job)
    headers = {} if speech.cache_hit is None else {"X-Cache": "hit" if speech.cache_hit else "miss"}
    return Response(speech.audio.data, media_type=speech.audio.content_type, headers=headers)
