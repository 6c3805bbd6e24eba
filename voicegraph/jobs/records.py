"""What the job database holds, as plain values: jobs, runs, uploads and callbacks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

JOB_ID_PREFIX, RUN_ID_PREFIX = "job_", "run_"
# What every id this store makes looks like: the HTTP layer refuses any other
# before it is looked up.
JOB_ID_PATTERN = rf"^{JOB_ID_PREFIX}[0-9a-f]{{32}}$"
RUN_ID_PATTERN = rf"^{RUN_ID_PREFIX}[0-9a-f]{{32}}$"

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JOB_STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
# Where a running job is: making audio (leased by a runner), or waiting for
# its audio to reach the bucket (owned by the upload outbox, no lease).
JobStage = Literal["synthesizing", "uploading"]
CallbackKind = Literal["success", "error"]
CallbackState = Literal["pending", "delivered", "expired"]

@dataclass(frozen=True)
class NewJob:
    request: dict[str, Any]  # the TTS request, replayed by whichever runner runs the job
    voice_id: str | None = None
    story_id: str | None = None
    user_id: str | None = None
    metadata: dict[str, Any] | None = None
    callback_url: str | None = None
    error_callback_url: str | None = None


@dataclass(frozen=True)
class JobResult:
    path: str
    url: str
    format: str
    content_type: str
    size_bytes: int
    duration_s: float
    sample_rate: int
    # Rendered as the job asked (WebVTT, SRT or a list of cues), else None.
    captions: str | list | None = None


@dataclass(frozen=True)
class CallbackRecord:
    id: str  # also the Idempotency-Key a receiver deduplicates on
    kind: CallbackKind
    url: str
    state: CallbackState
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: float
    delivered_at: float | None
    next_attempt_at: float
    expires_at: float


@dataclass(frozen=True)
class JobRecord:
    id: str
    status: JobStatus
    stage: JobStage | None
    request: dict[str, Any]
    voice_id: str | None
    story_id: str | None
    user_id: str | None
    metadata: dict[str, Any] | None
    callback_url: str | None
    error_callback_url: str | None
    chunks_done: int
    chunks_total: int | None
    attempts: int
    owner: str | None
    result: JobResult | None
    upload: Literal["pending", "done"] | None
    error_code: str | None
    error_message: str | None
    created_at: float
    updated_at: float
    finished_at: float | None
    callbacks: tuple[CallbackRecord, ...] = field(default=())
    started_at: float | None = None  # when a runner first took it


RunMode = Literal["simple", "batch"]
AudioDelivery = Literal["base64", "url"]


@dataclass(frozen=True)
class RunSection:
    id: str | None  # the caller's section id; None in simple mode
    job: JobRecord


@dataclass(frozen=True)
class RunRecord:
    """A serverless-style run (`POST /run`): one job per section, in order."""

    id: str
    mode: RunMode
    delivery: AudioDelivery
    created_at: float
    sections: tuple[RunSection, ...]
    streamed: int = 0  # sections the stream route has handed out


@dataclass(frozen=True)
class PendingUpload:
    key: str
    content_type: str
    job_id: str | None
    attempts: int


@dataclass(frozen=True)
class DueCallback:
    id: str
    job_id: str
    kind: CallbackKind
    url: str
    body: bytes
    attempts: int
    held_until: float | None = None  # when the caller's hold ends; None: not held


def to_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def callback_record(row) -> CallbackRecord:
    return CallbackRecord(
        id=row["id"],
        kind=row["kind"],
        url=row["url"],
        state=row["state"],
        attempts=row["attempts"],
        last_status=row["last_status"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
        next_attempt_at=row["next_attempt_at"],
        expires_at=row["expires_at"],
    )


def job_record(row, callbacks) -> JobRecord:
    result = from_json(row["result"])
    return JobRecord(
        id=row["id"],
        status=row["status"],
        stage=row["stage"],
        request=from_json(row["request"]),
        voice_id=row["voice_id"],
        story_id=row["story_id"],
        user_id=row["user_id"],
        metadata=from_json(row["metadata"]),
        callback_url=row["callback_url"],
        error_callback_url=row["error_callback_url"],
        chunks_done=row["chunks_done"],
        chunks_total=row["chunks_total"],
        attempts=row["attempts"],
        owner=row["owner"],
        result=JobResult(**result) if result else None,
        upload=row["upload"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        callbacks=tuple(callback_record(c) for c in callbacks),
        started_at=row["started_at"],
    )
