"""Running async jobs on this replica: claims, leases, heartbeats.

A job is run by whichever ingress replica claims it: the one that accepted
it when it has room, else the next replica polling for work. A runner holds
a lease it renews while it works; if its replica dies, the lease runs out and
another replica runs the job again, up to `jobs.max_attempts` runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from contextvars import ContextVar
from typing import Any

from ray.exceptions import RayActorError, RayTaskError
from ray.serve import context as serve_context

from serve_app.jobs.protocol import JobRequest
from serve_app.tts.serving import TTSServing
from voicegraph.core import metrics
from voicegraph.core.errors import VoiceGraphError
from voicegraph.core.retry import Retry, retry_async
from voicegraph.jobs.records import JobRecord

logger = logging.getLogger("ray.serve")

# The job the current task runs, for the `job_id` field of its log lines.
_current_job: ContextVar[str | None] = ContextVar("voicegraph_job_id", default=None)


class JobLogFields(logging.Filter):
    """Adds `job_id` to every line logged while a job runs (Serve's JSON logs
    carry it as a field; its text logs append it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        job_id = _current_job.get()
        if job_id is not None:
            record.job_id = job_id
        return True


_JOB_LOG_FIELDS = JobLogFields()

# A stopping replica waits this long per job for the StorageActor to take it back.
_RELEASE_TIMEOUT_S = 5.0


def _as_error(exc: BaseException) -> VoiceGraphError:
    if isinstance(exc, RayTaskError) and isinstance(exc.cause, VoiceGraphError):
        return exc.cause
    if isinstance(exc, VoiceGraphError):
        return exc
    logger.error("job failed with an unexpected error", exc_info=exc)
    return VoiceGraphError(f"internal error: {type(exc).__name__}")


async def call_storage(storage, method: str, *args: Any, retry_s: float) -> Any:
    """Call the StorageActor, waiting out a restart (killed, node lost)
    for up to `retry_s` (jobs.storage_retry_s) rather than losing the job's result."""
    policy = Retry(retry_on=(RayActorError,), initial_s=0.2, max_s=5.0, deadline_s=retry_s)

    def log(exc: BaseException, failures: int, delay_s: float) -> None:
        logger.warning("StorageActor unavailable (%s); retrying %s", exc, method)

    return await retry_async(lambda: getattr(storage, method).remote(*args), policy, log)


class JobRunner:
    def __init__(self, tts: TTSServing, storage, replica_name: str):
        self.tts = tts
        self.settings = tts.settings
        self._storage = storage
        self.replica_name = replica_name
        self._running: dict[str, asyncio.Task] = {}
        self._tokens: dict[str, str] = {}  # job id → the token of its run here
        self._poller: asyncio.Task | None = None

    def start(self) -> None:
        logger.addFilter(_JOB_LOG_FIELDS)
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        """This replica is shutting down: stop looking for work and hand the
        jobs it runs back to the queue, where another replica claims them
        within jobs.poll_interval_s instead of after their lease runs out."""
        handed_back = dict(self._tokens)
        for task in [self._poller, *self._running.values()]:
            if task is not None:
                task.cancel()
        for job_id, token in handed_back.items():
            try:
                await asyncio.wait_for(self._storage.release_job.remote(job_id, token), _RELEASE_TIMEOUT_S)
                logger.info("job %s handed back to the queue: this replica is stopping", job_id)
            except Exception as exc:
                logger.warning("could not hand job %s back (%s); it is taken over when its lease runs out", job_id, exc)

    async def claim_now(self, job_ids: list[str]) -> list[JobRecord]:
        """Start what this replica has room for at once; pollers take the rest."""
        claimed = []
        for job_id in job_ids:
            if not self._has_room():
                break
            record = await self._claim(job_id)
            if record is not None:
                claimed.append(record)
        return claimed

    def stop_here(self, job_ids: list[str]) -> None:
        """Stop cancelled jobs this replica runs at once (their chunks in
        flight are cancelled with them); a job another replica runs stops at
        that runner's next look (jobs.cancel_check_s)."""
        for job_id in job_ids:
            task = self._running.get(job_id)
            if task is not None:
                task.cancel()

    def _has_room(self) -> bool:
        return len(self._running) < self.settings.jobs.max_running_per_replica

    async def _call_storage(self, method: str, *args: Any) -> Any:
        return await call_storage(self._storage, method, *args, retry_s=self.settings.jobs.storage_retry_s)

    async def _claim(self, job_id: str | None = None) -> JobRecord | None:
        # A fresh token per run: if this replica's own poller takes over a job
        # whose earlier run here stalled, the stalled run sees it lost its lease.
        token = f"{self.replica_name}:{uuid.uuid4().hex[:12]}"
        record = await self._call_storage("claim_job", token, job_id)
        if record is not None:
            self._tokens[record.id] = token
            self._running[record.id] = asyncio.get_running_loop().create_task(
                self._run(record, token)
            )
        return record

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.jobs.poll_interval_s)
            try:
                while self._has_room() and await self._claim() is not None:
                    pass
            except Exception as exc:
                logger.warning("looking for queued jobs failed: %s", exc)

    async def _run(self, record: JobRecord, token: str) -> None:
        progress = [0, None]

        def on_progress(done: int, total: int) -> None:
            progress[:] = [done, total]

        # This task's own context: every call it makes to other deployments
        # carries the job id as Serve's request id, so one query on it finds
        # the job's lines in every deployment's log.
        _current_job.set(record.id)
        serve_context._set_request_context(request_id=record.id)
        heartbeat = asyncio.create_task(self._heartbeat(record.id, token, progress, asyncio.current_task()))
        try:
            request = JobRequest(**record.request)
            job = await self.tts.validate(request)
            speech = await self.tts.synthesize(job, on_progress, admitted=True)
            captions = self.tts.captions(speech, request.captions) if request.captions else None
            await self._call_storage("complete_job", record.id, speech.audio, job.voice_id, captions)
            _job_run_ended(record, "succeeded")
        except asyncio.CancelledError:
            # Cancelled by its caller, taken over elsewhere, or this replica is stopping.
            logger.info("job %s stopped on this replica", record.id)
            metrics.count("voicegraph_job_runs", outcome="stopped")
            raise
        except Exception as exc:
            _job_run_ended(record, "failed")
            error = _as_error(exc)
            try:
                await self._call_storage("fail_job", record.id, error.code, error.message, token)
            except Exception:
                # The lease runs out and another run tries the job again.
                logger.exception("could not record the failure of job %s", record.id)
        finally:
            heartbeat.cancel()
            if self._running.get(record.id) is asyncio.current_task():
                del self._running[record.id]
                del self._tokens[record.id]

    async def _heartbeat(self, job_id: str, token: str, progress: list, work: asyncio.Task) -> None:
        """Renew the lease every heartbeat_s (a write); between renewals, look
        every cancel_check_s (a read) whether the job was cancelled, so a cancel
        taken by another replica stops this run within that time."""
        options = self.settings.jobs
        loop = asyncio.get_running_loop()
        renew_at = loop.time() + options.heartbeat_s
        while True:
            await asyncio.sleep(max(0.0, min(options.cancel_check_s, renew_at - loop.time())))
            try:
                if loop.time() >= renew_at:
                    held = await self._storage.heartbeat_job.remote(job_id, token, *progress)
                    renew_at = loop.time() + options.heartbeat_s
                else:
                    held = await self._storage.job_status.remote(job_id) != "cancelled"
            except RayActorError:
                continue  # the StorageActor is restarting; the lease outlasts that
            except Exception as exc:
                # Keep renewing: a heartbeat task that died would let a live
                # run lose its job to a takeover.
                logger.warning("heartbeat of job %s failed: %s", job_id, exc)
                continue
            if not held:
                logger.warning("job %s was cancelled or taken over elsewhere; stopping this run", job_id)
                work.cancel()
                return


def _job_run_ended(record: JobRecord, outcome: str) -> None:
    metrics.count("voicegraph_job_runs", outcome=outcome)
    # From submission: the wait in the queue is part of what the client waited.
    metrics.observe("voicegraph_job_duration_s", time.time() - record.created_at, outcome=outcome)
