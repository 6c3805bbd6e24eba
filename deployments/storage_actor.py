"""The StorageActor deployment: the files, the job database and its outboxes.

With SQLite (the default) one replica: the database file and the audio
waiting for the bucket are on its node's disk. With PostgreSQL
(`jobs.database_url`) any number, none special: each serves any call and
drains the shared outboxes (docs/operations.md: "State").
Every method runs its Ray-free counterpart in a thread, so slow disk or
bucket calls never stall the replica's event loop.
"""

from __future__ import annotations

import asyncio
import logging

from ray import serve

from deployments.metrics import install_serve_metrics
from deployments.placement import replica_placement
from voicegraph.core.settings import Settings
from voicegraph.jobs import outbox, service

logger = logging.getLogger("ray.serve")


def _in_thread(core: str, method: str):
    """A handle method that runs `self.<core>.<method>` in a worker thread."""

    async def call(self, *args, **kwargs):
        return await asyncio.to_thread(getattr(getattr(self, core), method), *args, **kwargs)

    call.__name__ = call.__qualname__ = method
    return call


@serve.deployment(name="StorageActor")
class StorageActor:
    async def __init__(self, settings: Settings):
        install_serve_metrics()
        self._settings = settings
        self.jobs = await asyncio.to_thread(service.open_jobs, settings)
        self.files = self.jobs.files
        await asyncio.to_thread(self.jobs.resume_after_restart)
        self._outbox = outbox.Outbox(self.jobs, settings)
        # Runs for the replica's life: after a restart it picks up whatever
        # the previous replica left in the outboxes.
        self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        interval = min(self._settings.callbacks.poll_interval_s, self._settings.jobs.poll_interval_s)
        while True:
            try:
                await self._outbox.tick()
            except Exception:
                logger.exception("outbox pass failed; trying again")
            await asyncio.sleep(interval)

    def replica_info(self) -> dict:
        return replica_placement()

    async def check_health(self) -> None:
        if self._drain_task.done():
            raise RuntimeError("the outbox loop stopped")

    # Files: voicegraph.storage.service.StorageService
    write_new = _in_thread("files", "write_new")
    put = _in_thread("files", "put")
    get = _in_thread("files", "get")
    find = _in_thread("files", "find")
    exists = _in_thread("files", "exists")
    delete = _in_thread("files", "delete")
    list = _in_thread("files", "list")

    # Jobs, runs and the audio they make: voicegraph.jobs.service.JobService
    save_generation = _in_thread("jobs", "save_generation")
    create_job = _in_thread("jobs", "create_job")
    get_job = _in_thread("jobs", "get_job")
    job_status = _in_thread("jobs", "job_status")
    create_run = _in_thread("jobs", "create_run")
    get_run = _in_thread("jobs", "get_run")
    cancel_job = _in_thread("jobs", "cancel_job")
    cancel_run = _in_thread("jobs", "cancel_run")
    advance_stream = _in_thread("jobs", "advance_stream")
    purge_queue = _in_thread("jobs", "purge_queue")
    job_counts = _in_thread("jobs", "job_counts")
    claim_job = _in_thread("jobs", "claim_job")
    heartbeat_job = _in_thread("jobs", "heartbeat_job")
    release_job = _in_thread("jobs", "release_job")
    complete_job = _in_thread("jobs", "complete_job")
    fail_job = _in_thread("jobs", "fail_job")
