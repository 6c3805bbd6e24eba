"""HTTP routes for clients of the old serverless handler; the logic lives in serving.py."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from serve_app.access import charge_characters
from serve_app.migration.protocol import RunRequest, RunStatus
from serve_app.migration.serving import MigrationServing
from voicegraph.jobs.store import RunRecord

router = APIRouter(tags=["migration"])


def get_migration(request: Request) -> MigrationServing:
    return request.app.state.migration


async def _status(request: Request, migration: MigrationServing, run: RunRecord) -> RunStatus:
    return await migration.describe(run, lambda job_id: str(request.url_for("get_job_audio", job_id=job_id)))


@router.post("/run", response_model=RunStatus, response_model_exclude_none=True)
async def run(body: RunRequest, request: Request, migration: MigrationServing = Depends(get_migration)):
    """Queue a run and answer at once; poll GET /status/{id}."""
    await charge_characters(request, body.input.characters())
    return await _status(request, migration, await migration.run(body))


@router.post("/runsync", response_model=RunStatus, response_model_exclude_none=True)
async def run_sync(body: RunRequest, request: Request, migration: MigrationServing = Depends(get_migration)):
    """Run and answer when finished, or IN_PROGRESS after migration.runsync_wait_s."""
    await charge_characters(request, body.input.characters())
    return await _status(request, migration, await migration.run_sync(body))


@router.get("/status/{run_id}", response_model=RunStatus, response_model_exclude_none=True)
async def status(run_id: str, request: Request, migration: MigrationServing = Depends(get_migration)):
    return await _status(request, migration, await migration.status(run_id))
