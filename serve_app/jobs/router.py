"""HTTP routes of async jobs; the logic lives in serving.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse

from serve_app.access import charge_characters
from serve_app.dependencies import get_jobs
from serve_app.error_schemas import BODY, LOOKUP, error_responses
from serve_app.jobs.protocol import JobRequest, JobStatus
from serve_app.jobs.serving import JobsServing
from voicegraph.core.errors import NotFoundError
from voicegraph.jobs.records import JOB_ID_PATTERN, JobRecord

router = APIRouter(tags=["jobs"])

JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="The id POST /v1/tts/jobs answered with")]


def _status(request: Request, record: JobRecord) -> JobStatus:
    return JobStatus.of(record, str(request.url_for("get_job", job_id=record.id)))


@router.post("/v1/tts/jobs", status_code=202, response_model=JobStatus, responses=error_responses(*BODY, 503))
async def create_job(body: JobRequest, request: Request, jobs: JobsServing = Depends(get_jobs)):
    await charge_characters(request, len(body.text))
    status = _status(request, await jobs.submit(body))
    return JSONResponse(
        status.model_dump(mode="json"), status_code=202, headers={"Location": status.status_url}
    )


@router.get("/v1/tts/jobs/{job_id}", response_model=JobStatus, responses=error_responses(*LOOKUP, 503))
async def get_job(job_id: JobId, request: Request, jobs: JobsServing = Depends(get_jobs)):
    return _status(request, await jobs.status(job_id))


@router.post(
    "/v1/tts/jobs/{job_id}/cancel", response_model=JobStatus, responses=error_responses(*LOOKUP, 409, 503)
)
async def cancel_job(job_id: JobId, request: Request, jobs: JobsServing = Depends(get_jobs)):
    """A queued job never starts; a running one stops and ends `cancelled`, with
    its error callback. Cancelling again answers the same; a finished job is a 409."""
    return _status(request, await jobs.cancel(job_id))


@router.get(
    "/v1/tts/jobs/{job_id}/audio",
    response_class=Response,
    responses={**error_responses(*LOOKUP, 503), 200: {"description": "The job's audio file"}},
)
async def get_job_audio(job_id: JobId, jobs: JobsServing = Depends(get_jobs)):
    record = await jobs.status(job_id)
    if record.result is None:
        raise NotFoundError(f"job {job_id} has no audio yet (status {record.status})")
    data = await jobs.audio(record.result.path)
    return Response(data, media_type=record.result.content_type)
