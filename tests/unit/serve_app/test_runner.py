"""The job runner's leases with a stand-in StorageActor: cancels and takeovers seen by a running job."""

import asyncio

from serve_app.jobs.runner import JobRunner
from serve_app.tts.serving import TTSServing
from tests.helpers.handles import Call
from voicegraph.core.settings import Settings


def test_a_runner_stops_within_a_cancel_check_when_another_replica_cancels_its_job():
    settings = Settings(jobs={"heartbeat_s": 30, "lease_s": 60, "cancel_check_s": 0.01})
    states = iter(["running", "running", "cancelled"])
    storage = type("Storage", (), {"heartbeat_job": Call(lambda *a: True), "job_status": Call(lambda job_id: next(states))})()
    runner = JobRunner(TTSServing(settings, None, None, None, storage, None), storage, "replica-a")

    async def run():
        work = asyncio.create_task(asyncio.sleep(3600))
        await asyncio.wait_for(runner._heartbeat("job_1", "replica-a:1", [0, None], work), timeout=30)
        await asyncio.sleep(0)
        return work

    work = asyncio.run(run())
    assert work.cancelled()
    assert len(storage.job_status.calls) == 3 and storage.heartbeat_job.calls == []  # reads only, no lease write yet


def test_a_runner_renews_its_lease_every_heartbeat():
    settings = Settings(jobs={"heartbeat_s": 0.02, "lease_s": 1, "cancel_check_s": 0.5})
    renewals = iter([True, True, False])  # the third renewal finds the job taken over
    storage = type("Storage", (), {"heartbeat_job": Call(lambda *a: next(renewals)), "job_status": Call(lambda job_id: "running")})()
    runner = JobRunner(TTSServing(settings, None, None, None, storage, None), storage, "replica-a")

    async def run():
        work = asyncio.create_task(asyncio.sleep(3600))
        await asyncio.wait_for(runner._heartbeat("job_1", "replica-a:1", [2, 5], work), timeout=30)
        await asyncio.sleep(0)
        return work

    assert asyncio.run(run()).cancelled()
    assert [call[2:] for call in storage.heartbeat_job.calls] == [(2, 5)] * 3 and storage.job_status.calls == []
