"""Schemas of the async jobs API (`/v1/tts/jobs`)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field

from serve_app.tts.protocol import SpeechParams
from voicegraph.jobs.records import JobRecord
from voicegraph.text.captions import CaptionFormat


class JobRequest(SpeechParams):
    callback_url: str | None = Field(
        None, description="http(s) URL POSTed when the audio is ready (signed, retried until delivered)."
    )
    error_callback_url: str | None = Field(
        None,
        description="http(s) URL POSTed when the job fails; derived from callback_url when omitted "
        "(…/api/tts/callback → …/api/tts/error-callback).",
    )
    story_id: str | None = None
    user_id: str | None = None
    metadata: dict[str, Any] | None = Field(None, description="Echoed back in callbacks and the job status.")
    captions: CaptionFormat | None = Field(
        None, description="Sentence-level timestamps of the spoken text, in result.captions."
    )


class Progress(BaseModel):
    chunks_done: int
    chunks_total: int | None


class JobAudio(BaseModel):
    path: str = Field(description="Key in the storage layout, e.g. tts_generations/….wav")
    url: str
    upload: Literal["pending", "done"] = Field(
        description="pending: the audio is safe in local storage and waits for the bucket; "
        "the url works once it is done."
    )
    format: str
    content_type: str
    size_bytes: int
    duration_s: float
    sample_rate: int
    captions: str | list[dict[str, Any]] | None = Field(
        None, description="With `captions`: WebVTT or SRT text, or a list of {start, end, text}."
    )


class JobError(BaseModel):
    code: str
    message: str


class CallbackDelivery(BaseModel):
    kind: Literal["success", "error"]
    url: str
    state: Literal["pending", "delivered", "expired"]
    attempts: int
    idempotency_key: str
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None


class JobStatus(BaseModel):
    job_id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    status_url: str
    progress: Progress
    result: JobAudio | None
    error: JobError | None
    callbacks: list[CallbackDelivery]
    attempts: int
    story_id: str | None
    user_id: str | None
    voice_id: str | None
    metadata: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, record: JobRecord, status_url: str) -> JobStatus:
        result = record.result
        return cls(
            job_id=record.id,
            status=record.status,
            status_url=status_url,
            progress=Progress(chunks_done=record.chunks_done, chunks_total=record.chunks_total),
            result=JobAudio(**result.__dict__, upload=record.upload) if result else None,
            error=JobError(code=record.error_code, message=record.error_message)
            if record.error_code
            else None,
            callbacks=[
                CallbackDelivery(
                    kind=callback.kind,
                    url=callback.url,
                    state=callback.state,
                    attempts=callback.attempts,
                    idempotency_key=callback.id,
                    last_status=callback.last_status,
                    last_error=callback.last_error,
                    next_attempt_at=_time(callback.next_attempt_at)
                    if callback.state == "pending"
                    else None,
                    delivered_at=_time(callback.delivered_at),
                )
                for callback in record.callbacks
            ],
            attempts=record.attempts,
            story_id=record.story_id,
            user_id=record.user_id,
            voice_id=record.voice_id,
            metadata=record.metadata,
            created_at=_time(record.created_at),
            updated_at=_time(record.updated_at),
            finished_at=_time(record.finished_at),
        )


def _time(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)
