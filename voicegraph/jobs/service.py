"""What the StorageActor answers about jobs and runs.

The job database with the lease settings applied, and unknown ids turned into
404s a client can act on.
"""

from __future__ import annotations

from voicegraph.core.errors import ConflictError, NotFoundError
from voicegraph.core.settings import JobSettings
from voicegraph.jobs.store import AudioDelivery, JobRecord, JobStore, NewJob, RunMode, RunRecord

_CANCELLED = "cancelled at the caller's request"


class JobService:
    def __init__(self, store: JobStore, options: JobSettings):
        self.store = store
        self.options = options

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
