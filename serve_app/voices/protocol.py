"""Schemas of the voice library API (`/v1/voices`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class Voice(BaseModel):
    id: str = Field(description="What to send as `voice` in POST /v1/tts.")
    name: str
    description: str
    kind: Literal["preset", "cloned"]
    engine: str
    model: str
    # False for a clone made by an engine or model this service does not run.
    usable: bool = True
    language: str | None = None
    sample_rate: int | None = Field(None, description="Hz of this voice's audio, where it has its own.")
    created_at: datetime | None = None
    method: str | None = Field(None, description="How the voice was made, e.g. xtts-conditioning.")
    reference_duration_s: float | None = Field(None, description="Seconds of reference speech used.")
    sample: str | None = Field(None, description="Path of the sample's audio on this API.")
    sample_path: str | None = Field(None, description="Key of the sample in the storage layout.")
    sample_url: str | None = Field(None, description="Where storage keeps the sample.")


class EngineSummary(BaseModel):
    engine: str
    model: str
    default_voice: str
    default_language: str
    languages: list[str]
    can_clone: bool = Field(description="Whether POST /v1/voices can clone a recording with it.")


class VoiceList(BaseModel):
    # The default engine's, as when the service ran one engine.
    engine: str
    model: str
    default_voice: str
    default_language: str
    voices: list[Voice]
    languages: list[str]
    engines: list[EngineSummary] = Field(description="Every engine served, the default first.")
