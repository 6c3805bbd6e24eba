"""The StorageActor deployment: storage, the job database and the outboxes.

One replica: it is the only writer of the database and the only one draining
the outboxes. Every method runs its Ray-free counterpart in a thread, so slow
disk or bucket calls never stall the replica's event loop.
"""

from __future__ import annotations

import asyncio
import logging

from ray import serve

from deployments.metrics import install_serve_metrics
from voicegraph.audio.stitching import StitchedAudio
from voicegraph.core.settings import Settings
from voicegraph.jobs.service import JobService
from voicegraph.jobs.store import AudioDelivery, JobRecord, NewJob, RunMode, RunRecord
from voicegraph.storage.layout import StoredObject
from voicegraph.storage.outbox import Outbox
from voicegraph.storage.service import open_storage

logger = logging.getLogger("ray.serve")


@serve.deployment(name="StorageActor")
class StorageActor:
    async def __init__(self, settings: Settings):
        install_serve_metrics()
        self._settings = settings
        self._storage = await asyncio.to_thread(open_storage, settings)
        self._jobs = JobService(self._storage.jobs, settings.jobs)
        await asyncio.to_thread(self._jobs.resume_after_restart)
        self._outbox = Outbox(self._storage, settings)
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

    async def check_health(self) -> None:
        if self._drain_task.done():
            raise RuntimeError("the outbox loop stopped")

    # Files

    async def save_generation(self, audio: StitchedAudio, voice: str) -> StoredObject:
        return await asyncio.to_thread(self._storage.save_generation, audio, voice)

    async def write_new(self, key: str, data: bytes, content_type: str) -> StoredObject:
        return await asyncio.to_thread(self._storage.write_new, key, data, content_type)

    async def put(
        self, key: str, data: bytes, content_type: str, create_only: bool = False
    ) -> StoredObject:
        return await asyncio.to_thread(self._storage.put, key, data, content_type, create_only)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._storage.get, key)

    async def find(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self._storage.find, key)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._storage.exists, key)

    async def delete(self, key: str) -> bool:
        return await asyncio.to_thread(self._storage.delete, key)

    async def list(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self._storage.list, prefix)

    # Jobs

    async def create_job(self, job: NewJob) -> JobRecord:
        return await asyncio.to_thread(self._jobs.create_job, job)

    async def get_job(self, job_id: str) -> JobRecord:
        return await asyncio.to_thread(self._jobs.get_job, job_id)

    async def create_run(
        self, mode: RunMode, delivery: AudioDelivery, sections: list[tuple[str | None, NewJob]]
    ) -> RunRecord:
        return await asyncio.to_thread(self._jobs.create_run, mode, delivery, sections)

    async def get_run(self, run_id: str) -> RunRecord:
        return await asyncio.to_thread(self._jobs.get_run, run_id)

    async def job_status(self, job_id: str) -> str:
        return (await asyncio.to_thread(self._jobs.get_job, job_id)).status

    async def cancel_job(self, job_id: str) -> JobRecord:
        return await asyncio.to_thread(self._jobs.cancel_job, job_id)

    async def cancel_run(self, run_id: str) -> RunRecord:
        return await asyncio.to_thread(self._jobs.cancel_run, run_id)

    async def advance_stream(self, run_id: str) -> tuple[RunRecord, int]:
        return await asyncio.to_thread(self._jobs.advance_stream, run_id)

    async def purge_queue(self) -> int:
        return await asyncio.to_thread(self._jobs.purge_queue)

    async def job_counts(self) -> dict[str, int]:
        return await asyncio.to_thread(self._jobs.job_counts)

    async def claim_job(self, owner: str, job_id: str | None = None) -> JobRecord | None:
        return await asyncio.to_thread(self._jobs.claim_job, owner, job_id)

    async def heartbeat_job(
        self, job_id: str, owner: str, chunks_done: int, chunks_total: int | None
    ) -> bool:
        return await asyncio.to_thread(
            self._jobs.heartbeat_job, job_id, owner, chunks_done, chunks_total
        )

    async def release_job(self, job_id: str, owner: str) -> bool:
        return await asyncio.to_thread(self._jobs.release_job, job_id, owner)

    async def complete_job(
        self, job_id: str, audio: StitchedAudio, voice: str, captions: str | list | None = None
    ) -> JobRecord | None:
        return await asyncio.to_thread(self._storage.complete_job, job_id, audio, voice, captions)

    async def fail_job(
        self, job_id: str, code: str, message: str, owner: str | None = None
    ) -> JobRecord | None:
        return await asyncio.to_thread(self._jobs.fail_job, job_id, code, message, owner)
