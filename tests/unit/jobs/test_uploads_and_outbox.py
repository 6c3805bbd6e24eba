"""JobService's audio on the Firebase backend (real emulator): the spool, the
upload outbox and the callback outbox, without Ray, on each job database
(SQLite with a spool folder, PostgreSQL with the spool in the database)."""

import asyncio
import time
from dataclasses import replace

import pytest
from pydantic import SecretStr

from tests.helpers.callback_receiver import CallbackReceiver
from tests.helpers.gcs_emulator import firebase_settings
from voicegraph.audio.stitching import StitchedAudio
from voicegraph.core.settings import Settings
from voicegraph.jobs.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from voicegraph.jobs.outbox import Outbox
from voicegraph.jobs.records import NewJob
from voicegraph.jobs.service import JobService, open_jobs

pytestmark = pytest.mark.usefixtures("isolated_firebase")

AUDIO = StitchedAudio(b"ID3 fake mp3 bytes", "mp3", "audio/mpeg", 22050, 2.5, (2.5,))


def jobs_for(settings: Settings, job_database=None) -> JobService:
    if isinstance(job_database, str):
        settings = settings.model_copy(
            update={"jobs": settings.jobs.model_copy(update={"database_url": SecretStr(job_database)})}
        )
    return open_jobs(settings)


def staged(jobs: JobService) -> list[str]:
    return jobs.files.staged_keys(staged_before=time.time() + 1)


@pytest.fixture
def jobs(tmp_path, gcs_emulator, job_database) -> JobService:
    jobs = jobs_for(firebase_settings(tmp_path, gcs_emulator), job_database)
    yield jobs
    jobs.store.close()


def wait_until_due(jobs: JobService) -> None:
    deadline = time.monotonic() + 5
    while not jobs.store.uploads.due():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_save_with_bucket_up_uploads_and_caches(jobs, tmp_path):
    stored = jobs.save_generation(AUDIO, "Zoë")
    assert not stored.upload_pending
    assert stored.key.startswith("tts_generations/TTS_voice_zoe_") and stored.key.endswith(".mp3")
    assert jobs.files.backend.get(stored.key) == AUDIO.data
    assert (tmp_path / "cache" / stored.key).read_bytes() == AUDIO.data
    assert staged(jobs) == []
    assert jobs.store.uploads.due() == []


def test_save_with_bucket_down_spools_then_the_outbox_uploads(jobs, gcs_emulator, tmp_path):
    gcs_emulator.stop()
    stored = jobs.save_generation(AUDIO, "alice")
    assert stored.upload_pending
    assert staged(jobs) == [stored.key] and jobs.files.spool.get(stored.key) == AUDIO.data
    assert (tmp_path / "pending_uploads").exists() != jobs.store.db.shared  # not on this disk when shared
    assert jobs.files.get(stored.key) == AUDIO.data  # readable while pending
    outbox = Outbox(jobs, Settings(storage_root=tmp_path, jobs={"outbox_hold_s": 30}))
    assert outbox.upload_due() == 0  # held by the save that is trying it
    assert outbox.upload_due() == 0  # still down: kept, retried later
    gcs_emulator.start()
    wait_until_due(jobs)
    assert outbox.upload_due() == 1
    assert jobs.files.backend.get(stored.key) == AUDIO.data
    assert staged(jobs) == []
    assert jobs.store.uploads.due() == []


def test_job_audio_pending_then_succeeds_when_uploaded(jobs, gcs_emulator):
    job = jobs.store.create(NewJob(request={"text": "hi"}, callback_url="https://app.example/api/tts/callback"))
    jobs.store.claim("runner", 30, 3)
    gcs_emulator.stop()
    record = jobs.complete_job(job.id, AUDIO, "alice")
    assert record.status == "running" and record.upload == "pending" and record.callbacks == ()
    # A retried report from the runner changes nothing.
    assert jobs.complete_job(job.id, AUDIO, "alice").result == record.result
    gcs_emulator.start()
    wait_until_due(jobs)
    assert jobs.upload(jobs.store.uploads.due()[0]) is not None
    record = jobs.store.get(job.id)
    assert record.status == "succeeded" and record.upload == "done"
    assert [c.kind for c in record.callbacks] == ["success"]


def test_a_staged_file_without_a_record_is_adopted_not_lost(jobs):
    # A crash between staging the file and recording its upload.
    jobs.files.spool.write_new("tts_generations/TTS_voice_x_20261121_000000.wav", b"RIFF orphan", "audio/wav")
    assert jobs.adopt_orphans() == 0  # young: maybe a live replica's, about to record it
    assert jobs.adopt_orphans(older_than_s=0) == 1
    (pending,) = jobs.store.uploads.due()
    assert pending.key == "tts_generations/TTS_voice_x_20261121_000000.wav"
    assert pending.content_type == "audio/x-wav" or pending.content_type.startswith("audio/")
    assert jobs.upload(pending).key == pending.key
    assert jobs.files.backend.get(pending.key) == b"RIFF orphan"


def test_outbox_delivers_a_signed_error_callback(tmp_path, job_database):
    with CallbackReceiver() as receiver:
        settings = Settings(
            storage_root=tmp_path,
            outbound={"allow": [f"127.0.0.1:{receiver.port}"]},
            callbacks={"secret": "s3cret"},
        )
        jobs = jobs_for(settings, job_database)
        job = jobs.store.create(NewJob(request={"text": "hi"}, story_id="st", error_callback_url=receiver.url("/err")))
        jobs.store.fail(job.id, "synthesis_failed", "the engine failed")
        outbox = Outbox(jobs, settings)
        (due,) = jobs.store.callbacks.due(10, held_s=settings.jobs.outbox_hold_s)
        # A hold that is no longer the row's (another sender took it over): not sent.
        assert outbox.deliver(replace(due, held_until=due.held_until - 1)) is None
        assert receiver.received == []
        assert outbox.deliver(due).delivered
        (delivery,) = receiver.received
        assert delivery.json["error"] == "the engine failed" and delivery.json["story_id"] == "st"
        assert verify("s3cret", delivery.headers[TIMESTAMP_HEADER], delivery.body, delivery.headers[SIGNATURE_HEADER])
        assert jobs.store.get(job.id).callbacks[0].state == "delivered"
        outbox.close()
        jobs.store.close()


def test_the_outbox_counts_its_gauges_from_the_database_at_most_every_interval(tmp_path, recorded_metrics):
    settings = Settings(storage_root=tmp_path, jobs={"gauges_interval_s": 0.3})
    jobs = jobs_for(settings)
    outbox = Outbox(jobs, settings)

    def queued_gauges() -> list[float]:
        return [value for name, value, tags in recorded_metrics.records
                if name == "voicegraph_jobs" and tags == {"status": "queued"}]

    try:
        asyncio.run(outbox.tick())
        jobs.store.create(NewJob(request={"text": "hi"}))
        asyncio.run(outbox.tick())  # within the interval: not counted again
        assert queued_gauges() == [0]
        time.sleep(0.3)
        asyncio.run(outbox.tick())
        assert queued_gauges() == [0, 1]
    finally:
        outbox.close()
        jobs.store.close()
