"""JobService: the job database with the lease settings applied, unknown ids as 404s."""

import pytest

from voicegraph.core.errors import ConflictError, NotFoundError
from voicegraph.core.settings import JobSettings
from voicegraph.jobs.database import open_database
from voicegraph.jobs.records import NewJob
from voicegraph.jobs.service import JobService
from voicegraph.jobs.store import JobStore
from voicegraph.storage.local import LocalStorage
from voicegraph.storage.service import StorageService


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def jobs(tmp_path, job_database):
    clock = Clock()
    store = JobStore(open_database(job_database, clock), callback_expiry_s=3600)
    service = JobService(store, JobSettings(lease_s=10, max_attempts=2), StorageService(LocalStorage(tmp_path)))
    yield service, clock
    store.close()


def test_unknown_ids_are_404s_that_say_which(jobs):
    service, _ = jobs
    with pytest.raises(NotFoundError, match="job 'job_x' does not exist"):
        service.get_job("job_x")
    with pytest.raises(NotFoundError, match="run 'run_x' does not exist"):
        service.get_run("run_x")


def test_claims_use_the_lease_and_attempt_settings(jobs):
    service, clock = jobs
    job = service.create_job(NewJob(request={"text": "hi"}))
    assert service.claim_job("a").id == job.id
    clock.now += 9  # within the 10 s lease: nobody else may take it
    assert service.claim_job("b") is None
    assert service.heartbeat_job(job.id, "a", 1, 3)
    clock.now += 11  # the lease renewed at 1009 ran out at 1019
    assert service.claim_job("b").attempts == 2
    clock.now += 11  # the second (last allowed) run died too
    assert service.claim_job("c") is None
    failed = service.get_job(job.id)
    assert (failed.status, failed.error_code) == ("failed", "interrupted")


def test_resume_after_restart_gives_running_jobs_a_fresh_lease(jobs):
    service, clock = jobs
    job = service.create_job(NewJob(request={"text": "hi"}))
    service.claim_job("a")
    clock.now += 9
    assert service.resume_after_restart() == 1
    clock.now += 9  # 18 s after the claim, 9 s after the restart: still leased
    assert service.claim_job("b") is None
    assert service.fail_job(job.id, "synthesis_failed", "engine broke", owner="a").status == "failed"


def test_cancel_is_repeatable_and_a_finished_job_is_a_409(jobs):
    service, _ = jobs
    queued = service.create_job(NewJob(request={"text": "hi"}))
    assert service.cancel_job(queued.id).status == "cancelled"
    again = service.cancel_job(queued.id)
    assert again.status == "cancelled" and len(again.callbacks) == 0  # no callback URL, nothing queued twice
    failed = service.create_job(NewJob(request={"text": "hi"}))
    service.fail_job(failed.id, "synthesis_failed", "no")
    with pytest.raises(ConflictError, match="is failed; only a queued or running job can be cancelled"):
        service.cancel_job(failed.id)
    with pytest.raises(NotFoundError):
        service.cancel_job("job_x")


def test_cancelling_a_run_keeps_finished_sections(jobs):
    service, _ = jobs
    run = service.create_run("batch", "url", [("a", NewJob(request={"text": "a"})), ("b", NewJob(request={"text": "b"}))])
    first = run.sections[0].job.id
    service.fail_job(first, "synthesis_failed", "no")
    cancelled = service.cancel_run(run.id)
    assert [section.job.status for section in cancelled.sections] == ["failed", "cancelled"]
    assert service.purge_queue() == 0 and service.job_counts() == {"failed": 1, "cancelled": 1, "retried": 0, "runners": 0}
