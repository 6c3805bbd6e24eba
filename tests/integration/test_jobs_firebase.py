"""The graph on the Firebase backend, against a real GCS-protocol emulator on
loopback that the tests start, stop and restart: nothing is lost on the way."""

import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers.audio import decode, wav_bytes
from tests.helpers.jobs import callbacks_settled, deliveries, submit, wait_for_job
from tests.helpers.ports import free_port
from tests.helpers.texts import long_text
from tests.integration.conftest import CALLBACK_SECRET
from voicegraph.core.settings import Settings
from voicegraph.engines.espeak import EspeakEngine

pytestmark = pytest.mark.integration

BUCKET = "voicegraph-test"
SENTENCE = "The quick brown fox jumps over the lazy dog while the band plays on."


@dataclass(frozen=True)
class FirebaseService:
    url: str
    storage_root: Path
    emulator: object

    def blob(self, key: str) -> httpx.Response:
        """The object as a client fetching its public URL would get it."""
        return httpx.get(f"{self.emulator.url}/{BUCKET}/{key}", timeout=30)


@pytest.fixture(scope="module")
def firebase(service, receiver, reference_server, tmp_path_factory):
    from ray import serve

    from serve_app.app import build_app
    from tests.helpers.gcs_emulator import GcsEmulator

    emulator = GcsEmulator(tmp_path_factory.mktemp("gcs"), port=free_port(), bucket=BUCKET)
    emulator.start()
    root = tmp_path_factory.mktemp("firebase-storage")
    settings = Settings(
        engine="espeak",
        storage_root=root,
        storage_backend="firebase",
        firebase={
            "bucket": BUCKET,
            "emulator_host": emulator.host,
            "url_mode": "public",
            # A stopped emulator is noticed in seconds, and retried quickly.
            "timeout_s": 1,
            "retry_deadline_s": 2,
            "upload_retry_initial_s": 0.3,
            "upload_retry_max_s": 1,
        },
        synthesizer={"min_replicas": 1, "max_replicas": 1},
        outbound={"allow": [f"127.0.0.1:{reference_server.port}", f"127.0.0.1:{receiver.port}"]},
        # What a killed StorageActor held goes to its successor after 6 s, not the default 2 min.
        jobs={"lease_s": 3, "heartbeat_s": 0.3, "poll_interval_s": 0.3, "outbox_hold_s": 6},
        callbacks={
            "secret": CALLBACK_SECRET, "timeout_s": 2, "initial_backoff_s": 0.2, "max_backoff_s": 1.0, "poll_interval_s": 0.2,
        },
    )
    try:
        serve.run(build_app(settings), name="voicegraph-fb", route_prefix="/fb")
        yield FirebaseService(f"{service.url}/fb", root, emulator)
    finally:
        serve.delete("voicegraph-fb")
        emulator.stop()


@pytest.fixture()
def fb(firebase):
    # Every test starts with the emulator up, whatever the last one did.
    if not firebase.emulator.running:
        firebase.emulator.start()
    with httpx.Client(base_url=firebase.url, timeout=120) as http:
        yield http


def storage_actor() -> str:
    import ray

    (name,) = [
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if "SERVE_REPLICA::voicegraph-fb#StorageActor#" in actor["name"]
    ]
    return name


def test_job_audio_lands_in_the_bucket_with_its_content_type(fb, firebase, receiver):
    job = submit(fb, text=SENTENCE, format="mp3", callback_url=receiver.url("/api/tts/callback"))
    status = wait_for_job(fb, job["job_id"], callbacks_settled)
    assert status["status"] == "succeeded", status
    result = status["result"]
    assert result["upload"] == "done"
    assert result["url"] == f"{firebase.emulator.url}/{BUCKET}/{result['path']}"

    blob = firebase.blob(result["path"])
    assert blob.status_code == 200 and blob.headers["content-type"] == "audio/mpeg"
    pcm, rate = decode(blob.content)
    assert abs(len(pcm) / rate - result["duration_s"]) < 0.1
    # What the callback points at is the file in the bucket.
    (delivery,) = deliveries(receiver, job["job_id"])
    assert httpx.get(delivery.json["audio_url"]).content == blob.content
    # Nothing is left waiting locally; a copy stays in the cache.
    assert not any((firebase.storage_root / "pending_uploads").rglob("*.mp3"))
    assert (firebase.storage_root / "cache" / result["path"]).read_bytes() == blob.content


def test_voices_live_in_the_bucket_and_reads_come_from_the_cache(fb, firebase):
    reference = EspeakEngine().synthesize(SENTENCE * 2, "deep", "en-us", 1.0)
    created = fb.post("/v1/voices", files={"file": ("ref.wav", wav_bytes(reference, 22050))}, data={"name": "Fire Voice"})
    assert created.status_code == 201, created.text
    voice = created.json()
    assert voice["id"] == "fire_voice"
    for key in ("voice_profiles/voice_fire_voice.npy", "voice_profiles/voice_fire_voice.json", voice["sample_path"]):
        assert firebase.blob(key).status_code == 200, key
    assert firebase.blob(voice["sample_path"]).headers["content-type"] == "audio/wav"

    spoken = fb.post("/v1/tts", json={"text": SENTENCE, "voice": "fire_voice"})
    assert spoken.status_code == 200 and decode(spoken.content)[0].size > 0

    # With the bucket gone, the sample just written is still served, from the cache.
    firebase.emulator.stop()
    sample = fb.get("/v1/voices/fire_voice/sample")
    assert sample.status_code == 200
    firebase.emulator.start()
    assert sample.content == firebase.blob(voice["sample_path"]).content

    assert fb.delete("/v1/voices/fire_voice").status_code == 200
    assert firebase.blob("voice_profiles/voice_fire_voice.json").status_code == 404
    assert fb.get("/v1/voices/fire_voice").status_code == 404


def test_bucket_down_mid_job_keeps_audio_and_uploads_when_back(fb, firebase, receiver):
    job = submit(fb, text=long_text(2500), format="mp3", callback_url=receiver.url("/api/tts/callback"))
    wait_for_job(fb, job["job_id"], lambda s: s["status"] == "running")
    firebase.emulator.stop()
    try:
        status = wait_for_job(fb, job["job_id"], lambda s: s["result"] is not None)
        # The audio is safe locally and the job says so; no callback points at
        # a URL that does not work yet.
        assert status["status"] == "running" and status["result"]["upload"] == "pending"
        assert status["callbacks"] == []
        spooled = firebase.storage_root / "pending_uploads" / status["result"]["path"]
        assert spooled.is_file()
        audio = fb.get(f"/v1/tts/jobs/{job['job_id']}/audio")
        assert audio.status_code == 200 and audio.content == spooled.read_bytes()
        time.sleep(2)  # retries meanwhile fail, and nothing is dropped
        assert wait_for_job(fb, job["job_id"], lambda s: True)["result"]["upload"] == "pending"
    finally:
        firebase.emulator.start()

    status = wait_for_job(fb, job["job_id"], callbacks_settled)
    assert status["status"] == "succeeded" and status["result"]["upload"] == "done"
    blob = firebase.blob(status["result"]["path"])
    assert blob.status_code == 200 and blob.content == audio.content
    assert not spooled.exists()
    assert len(deliveries(receiver, job["job_id"], processed=True)) == 1


def test_sync_save_with_bucket_down_is_pending_then_uploaded(fb, firebase):
    firebase.emulator.stop()
    try:
        response = fb.post("/v1/tts", json={"text": SENTENCE, "save": True})
        assert response.status_code == 200, response.text
        saved = response.json()
        assert saved["upload_pending"] is True
    finally:
        firebase.emulator.start()
    deadline = time.monotonic() + 60
    while firebase.blob(saved["path"]).status_code != 200:
        assert time.monotonic() < deadline, "the pending upload never completed"
        time.sleep(0.3)
    assert len(firebase.blob(saved["path"]).content) == saved["size_bytes"]


def test_storage_actor_killed_with_an_upload_pending_finishes_it(fb, firebase, receiver):
    """The outbox lives in the database, not in the actor: a new StorageActor
    picks up the pending upload and the callback after the old one is killed."""
    import ray

    firebase.emulator.stop()
    try:
        job = submit(fb, text=SENTENCE, callback_url=receiver.url("/api/tts/callback"))
        wait_for_job(fb, job["job_id"], lambda s: s["result"] is not None and s["result"]["upload"] == "pending")
        victim = storage_actor()
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
    finally:
        firebase.emulator.start()
    status = wait_for_job(fb, job["job_id"], callbacks_settled, timeout=180)
    assert status["status"] == "succeeded" and status["result"]["upload"] == "done"
    assert firebase.blob(status["result"]["path"]).status_code == 200
    assert len(deliveries(receiver, job["job_id"], processed=True)) == 1
    assert storage_actor() != victim


def test_bucket_down_is_a_503_not_a_wrong_answer(fb, firebase):
    # Whether a clone exists cannot be known without the bucket: "unknown
    # voice" would be a lie, a 500 a bug.
    firebase.emulator.stop()
    try:
        response = fb.post("/v1/tts", json={"text": SENTENCE, "voice": "some_clone"})
        listing = fb.get("/v1/voices")
    finally:
        firebase.emulator.start()
    for answer in (response, listing):
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "storage_unavailable"
    assert fb.post("/v1/tts", json={"text": SENTENCE, "voice": "some_clone"}).status_code == 422
