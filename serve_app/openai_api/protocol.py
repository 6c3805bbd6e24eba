"""Schemas of OpenAI's speech API (`POST /v1/audio/speech`, `GET /v1/models`), as its clients send and read them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class VoiceReference(BaseModel):
    """OpenAI's form for a custom voice: `{"id": "voice_1234"}`."""

    id: str = Field(description="A preset or a cloned voice id from GET /v1/audio/voices.")


class SpeechRequest(BaseModel):
    # OpenAI adds fields over time: a client sending one we do not use must still work.
    model_config = ConfigDict(extra="ignore")

    model: str = Field(
        description="tts-1, tts-1-hd, gpt-4o-mini-tts (each mapped to an engine by the openai.models setting), "
        "an id from GET /v1/models, or any other name (the default engine). It picks the engine for OpenAI's "
        "voice names (alloy, echo…); a voice of ours is spoken by its own engine."
    )
    input: str
    voice: str | VoiceReference = Field(
        description="An OpenAI voice name (alloy, ash, ballad, coral, echo, fable, nova, onyx, sage, shimmer, "
        "verse; mapped by the openai.voices setting), or a preset or cloned voice id from GET /v1/audio/voices."
    )
    instructions: str | None = Field(
        None,
        description="Accepted for compatibility and ignored: the engines here cannot be steered by a prompt.",
    )
    response_format: str = Field("mp3", description="mp3, opus, aac, flac, wav or pcm; streamed: all but flac.")
    speed: float = 1.0
    stream: bool = Field(False, description="Send the audio bytes as they are made (mp3, opus, aac, wav, pcm).")
    stream_format: Literal["audio", "sse"] = Field(
        "audio",
        description="sse: server-sent events `speech.audio.delta` (base64 pieces of the audio in response_format) "
        "then `speech.audio.done`, with or without stream. audio: the audio itself, streamed when stream is true.",
    )

    @property
    def voice_id(self) -> str:
        return self.voice if isinstance(self.voice, str) else self.voice.id


class OpenAIError(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorResponse(BaseModel):
    error: OpenAIError


class SpeechUsage(BaseModel):
    """OpenAI counts tokens; the engines here have none, so these are characters of `input`
    (what API keys' limits count): input_tokens and total_tokens are the characters, output_tokens 0."""

    input_tokens: int
    output_tokens: int = 0
    total_tokens: int


class SpeechAudioDelta(BaseModel):
    type: Literal["speech.audio.delta"] = "speech.audio.delta"
    audio: str = Field(description="Base64 of the next piece of the audio, in response_format.")


class SpeechAudioDone(BaseModel):
    type: Literal["speech.audio.done"] = "speech.audio.done"
    usage: SpeechUsage


class SpeechStreamError(BaseModel):
    """Sent instead of `speech.audio.done` when synthesis fails after the stream began."""

    type: Literal["error"] = "error"
    error: OpenAIError


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(description="Unix seconds: when the running code was built.")
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


class OpenAIVoice(BaseModel):
    id: str = Field(description="What to send as `voice` in POST /v1/audio/speech.")
    name: str
    kind: Literal["preset", "cloned"]
    language: str | None = None


class OpenAIVoiceList(BaseModel):
    voices: list[OpenAIVoice]
