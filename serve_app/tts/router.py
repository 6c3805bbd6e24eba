"""HTTP routes of the native TTS API; the logic lives in serving.py."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from serve_app.access import charge_characters
from serve_app.deadlines import client_deadline
from serve_app.dependencies import get_tts
from serve_app.error_schemas import BODY, GRAPH, error_responses
from serve_app.request_ids import request_id
from serve_app.tts.protocol import ChunkInfo, SavedSpeech, SpeechParams, SpeechWithCaptions, TTSRequest
from serve_app.tts.serving import TTSServing
from serve_app.tts.streaming import speech_stream

router = APIRouter(tags=["tts"])

_AUDIO_RESPONSES = {
    **error_responses(*BODY, *GRAPH),
    200: {
        "description": "The audio file; JSON describing the stored file when save is true, "
        "or the audio as base64 with its captions when captions are asked for without save.",
        # FastAPI puts the model's schema (and those it refers to) under application/json.
        "model": SavedSpeech | SpeechWithCaptions,
        "content": {
            "audio/wav": {},
            "audio/mpeg": {},
            "audio/ogg": {},
            "audio/flac": {},
            "audio/aac": {},
            "audio/L16": {},
        },
        "headers": {
            "X-Audio-Duration": {"description": "Seconds of audio", "schema": {"type": "number"}},
            "X-Chunk-Count": {"description": "Chunks the text was split into", "schema": {"type": "integer"}},
            "X-Voice-Cache": {
                "description": "With voice_url: hit when the cached clone was used, miss when it was cloned",
                "schema": {"type": "string", "enum": ["hit", "miss"]},
            },
            "X-Cache": {
                "description": "Only while the response cache is on: hit when the audio came from it "
                "(an identical earlier request), miss when it was synthesized",
                "schema": {"type": "string", "enum": ["hit", "miss"]},
            },
            "X-Engine": {"description": "The engine that spoke it", "schema": {"type": "string"}},
            "X-Request-ID": {"description": "Id to quote when reporting a problem", "schema": {"type": "string"}},
        },
    }
}


@router.post("/v1/tts", responses=_AUDIO_RESPONSES, response_class=Response)
async def create_speech(
    body: TTSRequest,
    request: Request,
    tts: TTSServing = Depends(get_tts),
    deadline: float | None = Depends(client_deadline),
):
    await charge_characters(request, len(body.text))
    job = await tts.validate(body)
    speech = await tts.synthesize(job, deadline=deadline)
    audio = speech.audio
    headers = {
        "X-Audio-Duration": f"{audio.duration_s:.3f}",
        "X-Chunk-Count": str(len(speech.chunks)),
        "X-Engine": job.engine,
    }
    if job.voice_cache_hit is not None:
        headers["X-Voice-Cache"] = "hit" if job.voice_cache_hit else "miss"
    if speech.cache_hit is not None:
        headers["X-Cache"] = "hit" if speech.cache_hit else "miss"
    captions = tts.captions(speech, body.captions) if body.captions else None
    if not body.save:
        if captions is None:
            return Response(content=audio.data, media_type=audio.content_type, headers=headers)
        with_captions = SpeechWithCaptions(
            request_id=request_id(request),
            format=audio.format,
            content_type=audio.content_type,
            duration_s=audio.duration_s,
            sample_rate=audio.sample_rate,
            audio_base64=base64.b64encode(audio.data).decode("ascii"),
            captions=captions,
            words_estimated=speech.words_estimated,
        )
        return Response(with_captions.model_dump_json(), media_type="application/json", headers=headers)
    stored = await tts.save(speech)
    info = tts.engine_of(job)
    saved = SavedSpeech(
        request_id=request_id(request),
        path=stored.key,
        url=stored.url,
        upload_pending=stored.upload_pending,
        format=audio.format,
        content_type=audio.content_type,
        size_bytes=stored.size_bytes,
        duration_s=audio.duration_s,
        sample_rate=audio.sample_rate,
        voice=job.voice_id,
        language=job.language,
        engine=info.engine,
        model=info.model,
        chunks=[
            ChunkInfo(index=i, characters=len(text), duration_s=duration)
            for i, (text, duration) in enumerate(zip(speech.chunks, audio.chunk_durations_s, strict=True))
        ],
        captions=captions,
        words_estimated=speech.words_estimated,
    )
    return Response(saved.model_dump_json(), media_type="application/json", headers=headers)


@router.post(
    "/v1/tts/stream",
    response_class=StreamingResponse,
    responses={
        **error_responses(*BODY, *GRAPH),
        200: {"description": "Audio as it is made (chunked): pcm, wav, mp3 or opus."},
    },
)
async def stream_speech(
    body: SpeechParams,
    request: Request,
    tts: TTSServing = Depends(get_tts),
    deadline: float | None = Depends(client_deadline),
):
    """Audio sent chunk by chunk, in order, as soon as each next chunk is ready."""
    await charge_characters(request, len(body.text))
    return await speech_stream(tts, body, deadline)
