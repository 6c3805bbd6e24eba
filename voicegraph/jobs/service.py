"""What the StorageActor answers about jobs and runs, and the audio they make.

The job database with the lease settings applied, unknown ids turned into
404s a client can act on, and generated audio stored through the files
(`voicegraph.storage`): with a bucket, staged first and recorded in the
upload outbox, so that no audio is lost while the bucket is down.
"""

from __future__ import annotations

import logging
import mimetypes
import time
from pathlib import Path

from voicegraph.audio.stitching import StitchedAudio
from voicegraph.core import metrics
from voicegraph.core.errors import ConflictError, NotFoundError, StorageError
from voicegraph.core.retry import backoff_s
from voicegraph.core.settings import JobSettings, Settings
from voicegraph.jobs.database import open_database
from voicegraph.jobs.records import (
    AudioDelivery,
    JobRecord,
    JobResult,
    NewJob,
    PendingUpload,
    RunMode,
    RunRecord,
)
from voicegraph.jobs.staged_files import StagedFiles
from voicegraph.jobs.store import JobStore
from voicegraph.storage.layout import StoredObject
from voicegraph.storage.service import StorageService, open_storage

logger = logging.getLogger("ray.serve")

_CANCELLED = "cancelled at the caller's request"

# A staged file with no upload record this old was orphaned by a crash between
# staging and recording; a younger one may be a live replica's, mid-way.
ORPHAN_AGE_S = 60.0


class JobService:
    def __init__(
        self,
        store: JobStore,
        options: JobSettings,
        files: StorageService,
        upload_backoff_s: tuple[float, float] = (1.0, 60.0),
    ):
        self.store = store
        self.options = options
        self.files = files
        self.upload_backoff_s = upload_backoff_s  # (first retry, longest wait)
        self.adopt_orphans()

    def adopt_orphans(self, older_than_s: float = ORPHAN_AGE_S) -> int:
        """Record the upload of each file staged just before a crash, before
        its upload was recorded: uploaded rather than lost. Returns how many."""
        listed = set(self.store.uploads.keys())
        orphans = [k for k in self.files.staged_keys(time.time() - older_than_s) if k not in listed]
        for key in orphans:
            content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
            self.store.uploads.add(key, content_type, None)
        return len(orphans)

    def resume_after_restart(self) -> int:
        """Fresh leases for running jobs: nobody could renew them while the
        StorageActor was down, and their runners may well be alive."""
        return self.store.extend_leases(self.options.lease_s)

    def create_job(self, job: NewJob) -> JobRecord:
        return self.store.create(job)

    def get_job(self, job_id: str) -> JobRecord:
        record = self.store.get(job_id)
        if record is None:
            raise NotFoundError(f"job {job_id!r} does not exist")
        return record

    def job_status(self, job_id: str) -> str:
        return self.get_job(job_id).status

    def create_run(
        self, mode: RunMode, delivery: AudioDelivery, sections: list[tuple[str | None, NewJob]]
    ) -> RunRecord:
        return self.store.create_run(mode, delivery, sections)

    def get_run(self, run_id: str) -> RunRecord:
        record = self.store.get_run(run_id)
        if record is None:
            raise NotFoundError(f"run {run_id!r} does not exist")
        return record

    def advance_stream(self, run_id: str) -> tuple[RunRecord, int]:
        advanced = self.store.advance_stream(run_id)
        if advanced is None:
            raise NotFoundError(f"run {run_id!r} does not exist")
        return advanced

    def cancel_job(self, job_id: str) -> JobRecord:
        """A queued or synthesizing job ends `cancelled`; cancelling it again
        changes nothing; a job that has its audio, or failed, is a 409."""
        if self.get_job(job_id).status == "cancelled" or self.store.cancel([job_id], _CANCELLED):
            return self.get_job(job_id)
        record = self.get_job(job_id)
        storing = " (its audio is being stored)" if record.stage == "uploading" else ""
        raise ConflictError(
            f"job {job_id!r} is {record.status}{storing}; only a queued or running job can be cancelled"
        )

    def cancel_run(self, run_id: str) -> RunRecord:
        """Every section not yet finished is cancelled; finished ones keep their results."""
        run = self.get_run(run_id)
        self.store.cancel([section.job.id for section in run.sections], _CANCELLED)
        return self.get_run(run_id)

    def purge_queue(self) -> int:
        """Cancel every job still waiting for a runner; returns how many."""
        return len(self.store.cancel(None, "removed from the queue (purge-queue)"))

    def job_counts(self) -> dict[str, int]:
        return self.store.counts()

    def claim_job(self, owner: str, job_id: str | None = None) -> JobRecord | None:
        return self.store.claim(owner, self.options.lease_s, self.options.max_attempts, job_id)

    def heartbeat_job(
        self, job_id: str, owner: str, chunks_done: int, chunks_total: int | None
    ) -> bool:
        return self.store.heartbeat(job_id, owner, self.options.lease_s, chunks_done, chunks_total)

    def release_job(self, job_id: str, owner: str) -> bool:
        return self.store.release(job_id, owner)

    def fail_job(
        self, job_id: str, code: str, message: str, owner: str | None = None
    ) -> JobRecord | None:
        return self.store.fail(job_id, code, message, None, owner)

    # Audio

    def save_generation(self, audio: StitchedAudio, voice: str) -> StoredObject:
        """Store generated audio. With a bucket, it is uploaded at once if the
        bucket answers; if not, `upload_pending` is set, the file stays in the
        spool, and the upload outbox retries it until the bucket has it."""
        stored = self.files.stage(audio, voice)
        if not stored.upload_pending:
            return stored
        self.store.uploads.add(stored.key, stored.content_type, None, held_s=self.options.outbox_hold_s)
        return self.upload(PendingUpload(stored.key, stored.content_type, None, 0)) or stored

    def complete_job(
        self, job_id: str, audio: StitchedAudio, voice: str, captions: str | list | None = None
    ) -> JobRecord | None:
        """A runner finished a job's audio. Idempotent: once one runner has
        reported, a retried or second report changes nothing."""
        record = self.store.get(job_id)
        if record is None or record.status != "running" or record.stage != "synthesizing":
            return record
        stored = self.files.stage(audio, voice)
        result = JobResult(
            path=stored.key,
            url=stored.url,
            format=audio.format,
            content_type=audio.content_type,
            size_bytes=stored.size_bytes,
            duration_s=audio.duration_s,
            sample_rate=audio.sample_rate,
            captions=captions,
        )
        upload = stored.content_type if stored.upload_pending else None
        self.store.audio_ready(
            job_id, result, upload, len(audio.chunk_durations_s), upload_held_s=self.options.outbox_hold_s
        )
        if upload:
            self.upload(PendingUpload(stored.key, stored.content_type, job_id, 0))
        return self.store.get(job_id)

    def upload(self, pending: PendingUpload) -> StoredObject | None:
        """Move one spooled file to the bucket; None (and a retry scheduled,
        with backoff) when the bucket is unreachable."""
        try:
            stored = self.files.upload_staged(pending.key, pending.content_type)
        except StorageError as exc:
            retry_in = backoff_s(pending.attempts + 1, *self.upload_backoff_s)
            self.store.uploads.failed(pending.key, str(exc), retry_in)
            metrics.count("voicegraph_upload_retries")
            logger.warning("upload of %s failed (%s); retrying in %.1f s", pending.key, exc, retry_in)
            return None
        if stored is None:
            return None  # the outbox and complete_job raced; the other one uploaded it
        # Recorded before the spooled copy goes: a crash in between leaves an
        # orphan that is uploaded again, never a record without its file.
        self.store.upload_done(pending.key, stored.key, stored.url)
        self.files.discard_staged(pending.key)
        return stored


def open_jobs(settings: Settings) -> JobService:
    """The job database `settings` name (PostgreSQL, or SQLite in the storage
    root), over the files they describe. With a shared database, audio
    waiting for the bucket is staged in it, not on this node's disk."""
    url = settings.jobs.database_url
    db = open_database(
        url.get_secret_value() if url else Path(settings.storage_root) / "jobs.sqlite3",
        pool_size=settings.jobs.database_pool_size,
        connect_timeout_s=settings.jobs.database_connect_timeout_s,
    )
    store = JobStore(db, callback_expiry_s=settings.callbacks.expire_after_s)
    files = open_storage(settings, spool=StagedFiles(db) if db.shared else None)
    firebase = settings.firebase
    return JobService(
        store, settings.jobs, files, (firebase.upload_retry_initial_s, firebase.upload_retry_max_s)
    )
