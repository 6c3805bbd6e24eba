"""StorageService on the Firebase backend (real emulator): spool, cache and the
outboxes, without Ray."""

import asyncio
import time

import pytest

from tests.helpers.callback_receiver import CallbackReceiver
from voicegraph.audio.stitching import StitchedAudio
from voicegraph.core.settings import Settings
from voicegraph.jobs.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from voicegraph.jobs.store import NewJob
from voicegraph.storage.outbox import Outbox
from voicegraph.storage.service import StorageService, open_storage

pytestmark = pytest.mark.usefixtures("isolated_firebase")

AUDIO = StitchedAudio(b"ID3 fake mp3 bytes", "mp3", "audio/mpeg", 22050, 2.5, (2.5,))


def settings_for(root, emulator, **overrides) -> Settings:
    return Settings(
        storage_root=root,
        storage_backend="firebase",
        firebase={
            "bucket": emulator.bucket,
            "emulator_host": emulator.host,
            "url_mode": "public",
            "timeout_s": 1,
            "retry_deadline_s": 1,
            "upload_retry_initial_s": 0.05,
            "upload_retry_max_s": 0.1,
        },
        **overrides,
    )


@pytest.fixture
def service(tmp_path, gcs_emulator) -> StorageService:
    service = open_storage(settings_for(tmp_path, gcs_emulator))
    yield service
    service.jobs.close()


def wait_until_due(service: StorageService) -> None:
    deadline = time.monotonic() + 5
    while not service.jobs.due_uploads():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_save_with_bucket_up_uploads_and_caches(service, tmp_path):
    stored = service.save_generation(AUDIO, "Zoë")
    assert not stored.upload_pending
    assert stored.key.startswith("tts_generations/TTS_voice_zoe_") and stored.key.endswith(".mp3")
    assert service.backend.get(stored.key) == AUDIO.data
    assert (tmp_path / "cache" / stored.key).read_bytes() == AUDIO.data
    assert not any((tmp_path / "pending_uploads").rglob("*.mp3"))
    assert service.jobs.due_uploads() == []


def test_save_with_bucket_down_spools_then_the_outbox_uploads(service, gcs_emulator, tmp_path):
    gcs_emulator.stop()
    stored = service.save_generation(AUDIO, "alice")
    assert stored.upload_pending
    assert (tmp_path / "pending_uploads" / stored.key).read_bytes() == AUDIO.data
    assert service.get(stored.key) == AUDIO.data  # readable while pending
    outbox = Outbox(service, Settings(storage_root=tmp_path))
    wait_until_due(service)
    assert outbox.upload_due() == 0  # still down: kept, retried later
    gcs_emulator.start()
    wait_until_due(service)
    assert outbox.upload_due() == 1
    assert service.backend.get(stored.key) == AUDIO.data
    assert not (tmp_path / "pending_uploads" / stored.key).exists()
    assert service.jobs.due_uploads() == []


def test_job_audio_pending_then_succeeds_when_uploaded(service, gcs_emulator):
    job = service.jobs.create(NewJob(request={"text": "hi"}, callback_url="https://app.example/api/tts/callback"))
    service.jobs.claim("runner", 30, 3)
    gcs_emulator.stop()
    record = service.complete_job(job.id, AUDIO, "alice")
    assert record.status == "running" and record.upload == "pending" and record.callbacks == ()
    # A retried report from the runner changes nothing.
    assert service.complete_job(job.id, AUDIO, "alice").result == record.result
    gcs_emulator.start()
    wait_until_due(service)
    assert service.upload(service.jobs.due_uploads()[0]) is not None
    record = service.jobs.get(job.id)
    assert record.status == "succeeded" and record.upload == "done"
    assert [c.kind for c in record.callbacks] == ["success"]


def test_spooled_file_without_a_record_is_adopted_not_lost(tmp_path, gcs_emulator):
    # A crash between writing the spool file and recording its upload.
    orphan = tmp_path / "pending_uploads" / "tts_generations" / "TTS_voice_x_20261121_000000.wav"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"RIFF orphan")
    service = open_storage(settings_for(tmp_path, gcs_emulator))
    (pending,) = service.jobs.due_uploads()
    assert pending.key == "tts_generations/TTS_voice_x_20261121_000000.wav"
    assert pending.content_type == "audio/x-wav" or pending.content_type.startswith("audio/")
    assert service.upload(pending).key == pending.key
    assert service.backend.get(pending.key) == b"RIFF orphan"
    service.jobs.close()


def test_reads_come_from_the_cache_when_the_bucket_is_down(service, gcs_emulator):
    service.put("voice_samples/voice_a_sample_1.wav", b"RIFF sample", "audio/wav")
    gcs_emulator.stop()
    assert service.get("voice_samples/voice_a_sample_1.wav") == b"RIFF sample"
    with pytest.raises(Exception) as raised:
        service.get("voice_samples/never_written.wav")
    assert getattr(raised.value, "code", None) == "storage_unavailable"


def test_outbox_delivers_a_signed_error_callback(tmp_path):
    with CallbackReceiver() as receiver:
        settings = Settings(
            storage_root=tmp_path,
            outbound={"allow": [f"127.0.0.1:{receiver.port}"]},
            callbacks={"secret": "s3cret"},
        )
        service = open_storage(settings)
        job = service.jobs.create(NewJob(request={"text": "hi"}, story_id="st", error_callback_url=receiver.url("/err")))
        service.jobs.fail(job.id, "synthesis_failed", "the engine failed")
        outbox = Outbox(service, settings)
        (due,) = service.jobs.due_callbacks(10)
        assert outbox.deliver(due).delivered
        (delivery,) = receiver.received
        assert delivery.json["error"] == "the engine failed" and delivery.json["story_id"] == "st"
        assert verify("s3cret", delivery.headers[TIMESTAMP_HEADER], delivery.body, delivery.headers[SIGNATURE_HEADER])
        assert service.jobs.get(job.id).callbacks[0].state == "delivered"
        outbox.close()
        service.jobs.close()


def test_the_outbox_counts_its_gauges_from_the_database_at_most_every_interval(tmp_path, recorded_metrics):
    settings = Settings(storage_root=tmp_path, jobs={"gauges_interval_s": 0.3})
    service = open_storage(settings)
    outbox = Outbox(service, settings)

    def queued_gauges() -> list[float]:
        return [value for name, value, tags in recorded_metrics.records
                if name == "voicegraph_jobs" and tags == {"status": "queued"}]

    try:
        asyncio.run(outbox.tick())
        service.jobs.create(NewJob(request={"text": "hi"}))
        asyncio.run(outbox.tick())  # within the interval: not counted again
        assert queued_gauges() == [0]
        time.sleep(0.3)
        asyncio.run(outbox.tick())
        assert queued_gauges() == [0, 1]
    finally:
        outbox.close()
        service.jobs.close()
