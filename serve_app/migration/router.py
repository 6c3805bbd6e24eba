"""HTTP routes for clients of the old serverless handler; the logic lives in serving.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from serve_app.access import charge_characters
from serve_app.error_schemas import BODY, GRAPH, LOOKUP, error_responses
from serve_app.migration.protocol import RunRequest, RunStatus
from serve_app.migration.serving import MigrationServing
from voicegraph.jobs.store import RUN_ID_PATTERN, RunRecord

router = APIRouter(tags=["migration"])

RunId = Annotated[str, Path(pattern=RUN_ID_PATTERN, description="The id /run or /runsync answered with")]
_RUN_ERRORS = error_responses(*BODY, *GRAPH)


def get_migration(request: Request) -> MigrationServing:
    return request.app.state.migration


async def _status(request: Request, migration: MigrationServing, run: RunRecord) -> RunStatus:
    return await migration.describe(run, lambda job_id: str(request.url_for("get_job_audio", job_id=job_id)))


@router.post("/run", response_model=RunStatus, response_model_exclude_none=True, responses=_RUN_ERRORS)
async def run(body: RunRequest, request: Request, migration: MigrationServing = Depends(get_migration)):
    """Queue a run and answer at once; poll GET /status/{id}."""
    await charge_characters(request, body.input.characters())
    return await _status(request, migration, await migration.run(body))


@router.post("/runsync", response_model=RunStatus, response_model_exclude_none=True, responses=_RUN_ERRORS)
async def run_sync(body: RunRequest, request: Request, migration: MigrationServing = Depends(get_migration)):
    """Run and answer when finished, or IN_PROGRESS after migration.runsync_wait_s."""
    await charge_characters(request, body.input.characters())
    return await _status(request, migration, await migration.run_sync(body))


@router.get(
    "/status/{run_id}",
    response_model=RunStatus,
    response_model_exclude_none=True,
    responses=error_responses(*LOOKUP, 503),
)
async def status(run_id: RunId, request: Request, migration: MigrationServing = Depends(get_migration)):
    return await _status(request, migration, await migration.status(run_id))
