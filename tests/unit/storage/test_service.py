"""StorageService on the Firebase backend (real emulator): the spool and the cache, without jobs."""

import time

import pytest

from tests.helpers.gcs_emulator import firebase_settings
from voicegraph.audio.stitching import StitchedAudio
from voicegraph.core.errors import StorageError
from voicegraph.storage.service import StorageService, open_storage

pytestmark = pytest.mark.usefixtures("isolated_firebase")

AUDIO = StitchedAudio(b"RIFF fake wav bytes", "wav", "audio/wav", 22050, 2.5, (2.5,))


def staged(service: StorageService) -> list[str]:
    return service.staged_keys(staged_before=time.time() + 1)


@pytest.fixture
def service(tmp_path, gcs_emulator) -> StorageService:
    return open_storage(firebase_settings(tmp_path, gcs_emulator))


def test_staged_audio_waits_in_the_spool_until_uploaded_and_discarded(service, tmp_path):
    stored = service.stage(AUDIO, "Zoë")
    assert stored.upload_pending and stored.key.startswith("tts_generations/TTS_voice_zoe_")
    assert staged(service) == [stored.key]
    assert service.get(stored.key) == AUDIO.data  # readable while staged
    assert not service.backend.exists(stored.key)
    uploaded = service.upload_staged(stored.key, stored.content_type)
    assert uploaded.key == stored.key and service.backend.get(stored.key) == AUDIO.data
    assert staged(service) == [stored.key]  # kept until the caller has recorded the upload
    service.discard_staged(stored.key)
    assert staged(service) == []
    assert service.upload_staged(stored.key, stored.content_type) is None  # nothing left to upload


def test_an_upload_with_the_bucket_down_is_a_storage_error_and_the_file_stays(service, gcs_emulator):
    stored = service.stage(AUDIO, "alice")
    gcs_emulator.stop()
    with pytest.raises(StorageError, match=f"could not upload {stored.key}"):
        service.upload_staged(stored.key, stored.content_type)
    assert staged(service) == [stored.key]


def test_staged_keys_skip_writes_still_in_progress(service, tmp_path):
    (tmp_path / "pending_uploads" / "tts_generations").mkdir(parents=True)
    (tmp_path / "pending_uploads" / "tts_generations" / ".tmp-half-written").write_bytes(b"RI")
    assert staged(service) == []


def test_reads_come_from_the_cache_when_the_bucket_is_down(service, gcs_emulator):
    service.put("voice_samples/voice_a_sample_1.wav", b"RIFF sample", "audio/wav")
    gcs_emulator.stop()
    assert service.get("voice_samples/voice_a_sample_1.wav") == b"RIFF sample"
    with pytest.raises(Exception) as raised:
        service.get("voice_samples/never_written.wav")
    assert getattr(raised.value, "code", None) == "storage_unavailable"
