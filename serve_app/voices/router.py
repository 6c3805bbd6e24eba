"""HTTP routes of the voice library; the logic lives in serving.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Response, UploadFile

from serve_app.dependencies import get_voices
from serve_app.error_schemas import BODY, GRAPH, LOOKUP, error_responses
from serve_app.voices.protocol import Voice, VoiceList
from serve_app.voices.serving import VoicesServing
from voicegraph.voices.profiles import MAX_VOICE_ID_CHARS

router = APIRouter(tags=["voices"])

# A clone's id, or a preset's: `engine/voice` (one slash), or bare.
VoiceId = Annotated[
    str,
    Path(
        pattern=r"^([a-z]+/)?[^/\x00-\x1f]+$",
        max_length=MAX_VOICE_ID_CHARS,
        description="A voice id from GET /v1/voices",
    ),
]


@router.post("/v1/voices", status_code=201, response_model=Voice, responses=error_responses(*BODY, 409, *GRAPH))
async def create_voice(
    file: UploadFile = File(description="Reference recording: WAV, MP3, OGG/Opus, FLAC or M4A."),
    name: str = Form(description="Display name; the voice id is made from it."),
    language: str | None = Form(None, description="Language the voice will speak; the default if absent."),
    description: str = Form("", max_length=500),
    overwrite: bool = Form(False, description="Replace an existing voice with the same id."),
    engine: str | None = Form(
        None, description="Engine to clone with (one that can, GET /v1/voices `engines`); default: the first that can."
    ),
    voices: VoicesServing = Depends(get_voices),
) -> Voice:
    audio = await file.read()
    return await voices.create(audio, name, language, description, overwrite, engine)


@router.get("/v1/voices", response_model=VoiceList, responses=error_responses(503))
async def list_voices(voices: VoicesServing = Depends(get_voices)) -> VoiceList:
    return await voices.list()


# Before the voice's own route, which would take `<id>/sample` for an `engine/voice` id.
@router.get(
    "/v1/voices/{voice_id:path}/sample",
    response_class=Response,
    responses={
        **error_responses(*LOOKUP, *GRAPH),
        200: {"content": {"audio/wav": {}}, "description": "The voice reading a short sample."},
    },
)
async def get_voice_sample(voice_id: VoiceId, voices: VoicesServing = Depends(get_voices)) -> Response:
    return Response(await voices.sample(voice_id), media_type="audio/wav")


@router.get("/v1/voices/{voice_id:path}", response_model=Voice, responses=error_responses(*LOOKUP, 503))
async def get_voice(voice_id: VoiceId, voices: VoicesServing = Depends(get_voices)) -> Voice:
    return await voices.get(voice_id)


@router.delete("/v1/voices/{voice_id:path}", response_model=Voice, responses=error_responses(*LOOKUP, 409, 503))
async def delete_voice(voice_id: VoiceId, voices: VoicesServing = Depends(get_voices)) -> Voice:
    return await voices.delete(voice_id)
