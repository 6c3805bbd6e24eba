"""What the StorageActor answers about jobs and runs.

The job database with the lease settings applied, and unknown ids turned into
404s a client can act on.
"""

from __future__ import annotations

from voicegraph.core.errors import NotFoundError
from voicegraph.core.settings import JobSettings
from voicegraph.jobs.store import AudioDelivery, JobRecord, JobStore, NewJob, RunMode, RunRecord


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

    def claim_job(self, owner: str, job_id: str | None = None) -> JobRecord | None:
        return self.store.claim(owner, self.options.lease_s, self.options.max_attempts, job_id)

    def heartbeat_job(
        self, job_id: str, owner: str, chunks_done: int, chunks_total: int | None
    ) -> bool:
        return self.store.heartbeat(job_id, owner, self.options.lease_s, chunks_done, chunks_total)

    def fail_job(
        self, job_id: str, code: str, message: str, owner: str | None = None
    ) -> JobRecord | None:
        return self.store.fail(job_id, code, message, None, owner)
