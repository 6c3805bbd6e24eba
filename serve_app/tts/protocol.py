"""Schemas of the native TTS API (`/v1/tts`)."""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field

from voicegraph.core.settings import AudioFormatName
from voicegraph.text.captions import CaptionFormat


class SamplingParams(BaseModel):
    """Overrides of the model's published sampling defaults (XTTS); eSpeak ignores them."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(None, gt=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=1, le=1000)
    repetition_penalty: float | None = Field(None, ge=1, le=20)
    length_penalty: float | None = Field(None, ge=-10, le=10)


class SpeechParams(BaseModel):
    """What to say and how: shared by /v1/tts and async jobs."""

    # Unknown fields are refused so a typo ("voise") is an error, not a silent default.
    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="Text to speak; limits are in the service settings.")
    voice: str | None = Field(
        None,
        description="Voice id from GET /v1/voices: a preset (`engine/voice`, or the bare id where one engine "
        "offers it) or a clone, spoken by the engine that made it.",
    )
    engine: str | None = Field(
        None,
        description="Engine that speaks when `voice` is absent (its default voice) or a voice_url is cloned; "
        "default: the service's default engine. A voice's own engine otherwise.",
    )
    voice_url: str | None = Field(
        None,
        description="http(s) URL of a reference recording to clone on the fly, instead of `voice`; "
        "the clone is cached by URL and revalidated with ETag/Last-Modified.",
    )
    language: str | None = Field(None, description="Language code, e.g. en-us.")
    # A plain string, checked by the service, so an unknown format gets the
    # `unsupported_format` error code rather than a generic validation error.
    format: str | None = Field(
        None,
        description=f"Audio format of the result: one of {', '.join(get_args(AudioFormatName))}.",
        examples=list(get_args(AudioFormatName)),
    )
    speed: float = Field(1.0, description="Speaking rate multiplier.")
    normalize: bool | None = Field(
        None,
        description="Read numbers, dates, currency, abbreviations, URLs as words before speaking; "
        "default: the service's normalize_text setting. Send false for text you normalised yourself.",
    )
    sampling: SamplingParams | None = None


class TTSRequest(SpeechParams):
    save: bool = Field(False, description="Store the file and return its location as JSON.")
    captions: CaptionFormat | None = Field(
        None,
        description="Sentence and word timestamps of the text as written (json: each sentence with its "
        "words). The answer is then "
        "JSON: the stored file's location with save, else the audio as base64, plus `captions`.",
    )


class ChunkInfo(BaseModel):
    index: int
    characters: int
    duration_s: float


class SavedSpeech(BaseModel):
    request_id: str
    path: str = Field(description="Key in the storage layout, e.g. tts_generations/….wav")
    url: str
    upload_pending: bool = Field(
        False,
        description="True while the file waits in local storage for the bucket to come back; "
        "the url works once it is uploaded.",
    )
    format: str
    content_type: str
    size_bytes: int
    duration_s: float
    sample_rate: int
    voice: str
    language: str
    engine: str
    model: str
    chunks: list[ChunkInfo]
    captions: str | list[dict[str, Any]] | None = Field(
        None,
        description="With `captions`: WebVTT or SRT text, or a list of {start, end, text, words: [{word, start, "
        "end}]}; text and words as written in the request.",
    )
    words_estimated: bool | None = Field(
        None,
        description="With captions: true where the engine could not time its words (XTTS) and they are "
        "spread by spoken weight; false where each word's time is the engine's own (Piper, eSpeak).",
    )


class SpeechWithCaptions(BaseModel):
    request_id: str
    format: str
    content_type: str
    duration_s: float
    sample_rate: int
    audio_base64: str
    captions: str | list[dict[str, Any]]
    words_estimated: bool | None = Field(
        None,
        description="With captions: true where the engine could not time its words (XTTS) and they are "
        "spread by spoken weight; false where each word's time is the engine's own (Piper, eSpeak).",
    )
