"""HTTP routes for clients of the serverless platform; the logic lives in serving.py.

Two URL shapes: `/v2/{endpoint_id}/…`, what the platform's SDK calls
(`RUNPOD_ENDPOINT_BASE_URL=http://host:8000/v2`), and the unprefixed routes
of the platform's local test server (`/run`, `/runsync`, `/status/{id}`, …).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from ray import serve

from serve_app.access import charge_characters
from serve_app.dependencies import get_serverless
from serve_app.error_schemas import BODY, GRAPH, LOOKUP, error_responses
from serve_app.serverless.protocol import EndpointHealth, PurgedQueue, RunRequest, RunStatus, RunStream
from serve_app.serverless.serving import ServerlessServing
from voicegraph.core.errors import NotFoundError
from voicegraph.jobs.records import RUN_ID_PATTERN, RunRecord

RunId = Annotated[str, Path(pattern=RUN_ID_PATTERN, description="The id /run or /runsync answered with")]
_RUN_ERRORS = error_responses(*BODY, *GRAPH)
_LOOKUP_ERRORS = error_responses(*LOOKUP, 503)
_STATUS = {"response_model": RunStatus, "response_model_exclude_none": True}


async def check_endpoint(
    request: Request,
    endpoint_id: Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z0-9_-]+$", description="Any id, or "
                                     "the one serverless.endpoint_id names")],
) -> None:
    expected = get_serverless(request).settings.serverless.endpoint_id
    if expected is not None and endpoint_id != expected:
        raise NotFoundError(f"no endpoint {endpoint_id!r} here; this service is endpoint {expected!r}")


def _audio_link(request: Request):
    return lambda job_id: str(request.url_for("get_job_audio", job_id=job_id))


async def _status(request: Request, serverless: ServerlessServing, run: RunRecord) -> RunStatus:
    return await serverless.describe(run, _audio_link(request))


# Routes of both URL shapes.
router = APIRouter(tags=["serverless"])


@router.post("/run", **_STATUS, responses=_RUN_ERRORS)
async def run(body: RunRequest, request: Request, serverless: ServerlessServing = Depends(get_serverless)):
    """Queue a run and answer at once; poll status/{id}."""
    await charge_characters(request, body.input.characters())
    return await _status(request, serverless, await serverless.run(body))


@router.post("/runsync", **_STATUS, responses=_RUN_ERRORS)
async def run_sync(body: RunRequest, request: Request, serverless: ServerlessServing = Depends(get_serverless)):
    """Run and answer when finished, or IN_PROGRESS after serverless.runsync_wait_s."""
    await charge_characters(request, body.input.characters())
    return await _status(request, serverless, await serverless.run_sync(body))


@router.api_route("/status/{run_id}", methods=["GET", "POST"], **_STATUS, responses=_LOOKUP_ERRORS)
async def status(run_id: RunId, request: Request, serverless: ServerlessServing = Depends(get_serverless)):
    return await _status(request, serverless, await serverless.status(run_id))


@router.api_route("/stream/{run_id}", methods=["GET", "POST"], response_model=RunStream, responses=_LOOKUP_ERRORS)
async def stream(run_id: RunId, request: Request, serverless: ServerlessServing = Depends(get_serverless)):
    """Sections finished since the last call, each once, in order (simple mode: the audio once done)."""
    return await serverless.stream(run_id, _audio_link(request))


@router.post("/cancel/{run_id}", **_STATUS, responses=_LOOKUP_ERRORS)
async def cancel(run_id: RunId, request: Request, serverless: ServerlessServing = Depends(get_serverless)):
    """Sections not yet finished end cancelled (CANCELLED); finished ones keep their audio."""
    return await _status(request, serverless, await serverless.cancel(run_id))


# Routes only the SDK's shape has: unprefixed, /health is the service's own.
endpoint_router = APIRouter(prefix="/v2/{endpoint_id}", tags=["serverless"], dependencies=[Depends(check_endpoint)])
endpoint_router.include_router(router)


def _ingress_replicas() -> int:
    context = serve.get_replica_context()
    application = serve.status().applications[context.app_name]
    return application.deployments[context.deployment].replica_states.get("RUNNING", 1)


@endpoint_router.get("/health", response_model=EndpointHealth, responses=error_responses(404, 503))
async def endpoint_health(serverless: ServerlessServing = Depends(get_serverless)):
    """Jobs by state; workers: the ingress replicas, running when they run a job."""
    return await serverless.health(await asyncio.to_thread(_ingress_replicas))


@endpoint_router.post("/purge-queue", response_model=PurgedQueue, responses=error_responses(404, 503))
async def purge_queue(serverless: ServerlessServing = Depends(get_serverless)):
    """Cancel every run section still waiting in the queue, with its error callback."""
    return await serverless.purge_queue()
