"""Schemas of OpenAI's speech API (`POST /v1/audio/speech`), as its clients send them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SpeechRequest(BaseModel):
    # OpenAI adds fields over time (instructions, stream_format …): a client
    # sending one we do not use must still work.
    model_config = ConfigDict(extra="ignore")

    model: str = Field(description="Accepted for compatibility; the service's engine speaks.")
    input: str
    voice: str = Field(description="A preset or a cloned voice id from GET /v1/voices.")
    response_format: str = Field("mp3", description="mp3, opus, aac, flac, wav or pcm.")
    speed: float = 1.0
    stream: bool = Field(False, description="Send the audio as it is made (mp3, opus, aac, wav, pcm).")
    stream_format: Literal["audio", "sse"] = "audio"


class OpenAIError(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorResponse(BaseModel):
    error: OpenAIError
