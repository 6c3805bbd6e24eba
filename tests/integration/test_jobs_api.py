"""Async jobs over HTTP on the real graph, with a real callback receiver.

The local storage backend; the Firebase backend and its faults are in
test_jobs_firebase.py.
"""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers.audio import decode, wav_bytes
from tests.helpers.captions import CAPTIONED, parse_cues
from tests.helpers.jobs import callbacks_settled, deliveries, finished, submit, wait_for_job
from tests.helpers.local_serve import replicas
from tests.helpers.texts import long_text
from tests.integration.conftest import CALLBACK_SECRET
from voicegraph.engines.espeak import EspeakEngine
from voicegraph.jobs.callbacks import (
    ATTEMPT_HEADER,
    EVENT_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)

pytestmark = pytest.mark.integration

SENTENCE = "The quick brown fox jumps over the lazy dog while the band plays on."


def test_job_succeeds_stores_audio_and_calls_back_signed(client, service, receiver):
    job = submit(
        client,
        text=long_text(1500),
        voice="bright",
        format="mp3",
        callback_url=receiver.url("/api/tts/callback"),
        story_id="story-42",
        user_id="user-7",
        metadata={"chapter": 3, "title": "Foxes"},
    )
    assert job["status"] in ("queued", "running")
    assert job["status_url"].endswith(f"/v1/tts/jobs/{job['job_id']}")
    status = wait_for_job(client, job["job_id"], callbacks_settled)

    assert status["status"] == "succeeded", status
    assert status["error"] is None
    progress = status["progress"]
    assert progress["chunks_total"] > 1 and progress["chunks_done"] == progress["chunks_total"]
    result = status["result"]
    assert result["upload"] == "done" and result["format"] == "mp3"
    assert result["path"].startswith("tts_generations/TTS_voice_bright_") and result["path"].endswith(".mp3")
    stored = (service.storage_root / result["path"]).read_bytes()
    assert len(stored) == result["size_bytes"]
    pcm, rate = decode(stored)
    assert abs(len(pcm) / rate - result["duration_s"]) < 0.1 and result["duration_s"] > 5

    audio = client.get(f"/v1/tts/jobs/{job['job_id']}/audio")
    assert audio.status_code == 200 and audio.content == stored
    assert audio.headers["content-type"] == "audio/mpeg"

    (delivery,) = deliveries(receiver, job["job_id"])
    assert delivery.path == "/api/tts/callback" and delivery.status == 200
    payload = delivery.json
    assert payload["status"] == "succeeded" and payload["story_id"] == "story-42"
    assert payload["user_id"] == "user-7" and payload["voice_id"] == "bright"
    assert payload["metadata"] == {"chapter": 3, "title": "Foxes"}
    assert payload["audio_path"] == result["path"] and payload["audio_url"] == result["url"]
    assert payload["duration_s"] == pytest.approx(result["duration_s"])
    headers = delivery.headers
    assert verify(CALLBACK_SECRET, headers[TIMESTAMP_HEADER], delivery.body, headers[SIGNATURE_HEADER])
    assert not verify("another-secret", headers[TIMESTAMP_HEADER], delivery.body, headers[SIGNATURE_HEADER])
    assert headers[IDEMPOTENCY_HEADER] == f"{job['job_id']}.success"
    assert headers[EVENT_HEADER] == "tts.job.succeeded" and headers[ATTEMPT_HEADER] == "1"
    (callback,) = status["callbacks"]
    assert callback["state"] == "delivered" and callback["attempts"] == 1 and callback["last_status"] == 200


def test_job_without_callback_just_runs(client):
    job = submit(client, text=SENTENCE)
    status = wait_for_job(client, job["job_id"], finished)
    assert status["status"] == "succeeded" and status["callbacks"] == []
    assert status["voice_id"] == "default"


def test_failed_job_sends_error_callback_to_derived_url(client, receiver, reference_server):
    # The reference answers once (the check at submit) and is gone when the
    # job runs: the job fails, with its error callback.
    reference = EspeakEngine().synthesize(SENTENCE * 2, "deep", "en-us", 1.0)
    url = reference_server.publish("/expiring.wav", wav_bytes(reference, 22050), '"exp-1"', requests=1)
    job = submit(
        client,
        text=SENTENCE,
        voice_url=url,
        callback_url=receiver.url("/api/tts/callback"),
        story_id="story-err",
        metadata={"k": "v"},
    )
    status = wait_for_job(client, job["job_id"], callbacks_settled)
    assert status["status"] == "failed" and status["result"] is None
    assert status["error"]["code"] == "url_unreachable"
    assert "404" in status["error"]["message"]

    (delivery,) = deliveries(receiver, job["job_id"])
    assert delivery.path == "/api/tts/error-callback"
    payload = delivery.json
    assert payload["error"] == status["error"]["message"]
    assert payload["error_details"]["code"] == "url_unreachable"
    assert payload["story_id"] == "story-err" and payload["metadata"] == {"k": "v"}
    assert payload["voice_id"] == status["voice_id"] and payload["job_id"] == job["job_id"]
    assert delivery.headers[EVENT_HEADER] == "tts.job.failed"
    assert delivery.headers[IDEMPOTENCY_HEADER] == f"{job['job_id']}.error"
    (callback,) = status["callbacks"]
    assert callback["kind"] == "error" and callback["state"] == "delivered"


def test_callback_retried_until_receiver_answers_and_processed_once(client, receiver):
    receiver.respond_with(503)
    try:
        job = submit(client, text=SENTENCE, callback_url=receiver.url("/api/tts/callback"))
        # The job succeeds whatever the receiver does; the callback keeps trying.
        status = wait_for_job(
            client, job["job_id"], lambda s: finished(s) and s["callbacks"] and s["callbacks"][0]["attempts"] >= 3
        )
        assert status["status"] == "succeeded"
        (callback,) = status["callbacks"]
        assert callback["state"] == "pending" and callback["last_status"] == 503
        assert callback["next_attempt_at"] is not None
    finally:
        receiver.respond_with(200)
    status = wait_for_job(client, job["job_id"], callbacks_settled)
    assert status["callbacks"][0]["state"] == "delivered"
    attempts = deliveries(receiver, job["job_id"])
    assert len(attempts) >= 4
    assert {a.headers[IDEMPOTENCY_HEADER] for a in attempts} == {f"{job['job_id']}.success"}
    assert [int(a.headers[ATTEMPT_HEADER]) for a in attempts] == list(range(1, len(attempts) + 1))
    assert len(deliveries(receiver, job["job_id"], processed=True)) == 1


def test_receiver_down_then_back_gets_the_callback_once(client, receiver):
    receiver.stop()
    try:
        job = submit(client, text=SENTENCE, callback_url=receiver.url("/api/tts/callback"))
        status = wait_for_job(
            client, job["job_id"], lambda s: finished(s) and s["callbacks"] and s["callbacks"][0]["attempts"] >= 2
        )
        (callback,) = status["callbacks"]
        assert callback["state"] == "pending" and callback["last_status"] is None
        assert "could not POST" in callback["last_error"]
    finally:
        receiver.restart()
    status = wait_for_job(client, job["job_id"], callbacks_settled)
    assert status["callbacks"][0]["state"] == "delivered"
    assert len(deliveries(receiver, job["job_id"], processed=True)) == 1


@pytest.mark.parametrize(
    "fields, code, words",
    [
        ({"callback_url": "ftp://example.com/cb"}, "url_refused", "callback_url"),
        ({"callback_url": "file:///etc/passwd"}, "url_refused", "only http and https"),
        ({"callback_url": "http://10.0.0.8/api/tts/callback"}, "url_refused", "private"),
        ({"callback_url": "http://169.254.169.254/latest"}, "url_refused", "metadata"),
        ({"callback_url": "http://127.0.0.1:9/api/tts/callback"}, "url_refused", "loopback"),
        ({"error_callback_url": "http://[::1]:8080/err"}, "url_refused", "error_callback_url"),
        ({"text": "   "}, "empty_text", "text"),
        ({"voice": "nobody"}, "unknown_voice", "nobody"),
        ({"speed": 9}, "speed_out_of_range", "speed"),
        ({"metadata": {"blob": "x" * 20_000}}, "invalid_request", "metadata"),
        ({"story_id": "s" * 300}, "invalid_request", "story_id"),
        ({"callbak_url": "https://example.com"}, "invalid_request", "callbak_url"),
    ],
)
def test_bad_job_requests_are_4xx_and_create_nothing(client, receiver, fields, code, words):
    body = {"text": SENTENCE, **fields}
    response = client.post("/v1/tts/jobs", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"]


def test_storage_actor_killed_mid_job_loses_nothing(client, service, receiver):
    """The StorageActor dies while a long job runs: the runner waits for the
    new replica, and the job, its audio and its callback all come through."""
    import ray

    # Texts of their own in these tests: a response cache hit would finish before the kill.
    job = submit(client, text=long_text(13_000, start=2), callback_url=receiver.url("/api/tts/callback"))
    wait_for_job(client, job["job_id"], lambda s: s["progress"]["chunks_done"] > 0)
    (victim,) = replicas("StorageActor")
    ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)

    status = wait_for_job(client, job["job_id"], callbacks_settled, timeout=240)
    assert status["status"] == "succeeded", status
    assert status["attempts"] == 1  # finished by the run that started it
    assert (service.storage_root / status["result"]["path"]).is_file()
    assert len(deliveries(receiver, job["job_id"], processed=True)) == 1
    assert victim not in replicas("StorageActor")


def test_job_cut_off_by_a_dead_runner_is_taken_over(client, service, receiver):
    """The ingress replica running a job dies: its lease runs out and the
    replica Serve starts in its place runs the job again."""
    import ray

    job = submit(client, text=long_text(13_000, start=3), callback_url=receiver.url("/api/tts/callback"))
    wait_for_job(client, job["job_id"], lambda s: s["progress"]["chunks_done"] > 0)
    (victim,) = replicas("Ingress")
    ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)

    status = wait_for_ingress_then_job(client, job["job_id"])
    assert status["status"] == "succeeded", status
    assert status["attempts"] == 2
    assert (service.storage_root / status["result"]["path"]).is_file()
    assert len(deliveries(receiver, job["job_id"], processed=True)) == 1


def wait_for_ingress_then_job(client, job_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = client.get(f"/v1/tts/jobs/{job_id}")
        except Exception:
            response = None  # the proxy has no ingress replica for a moment
        if response is not None and response.status_code == 200 and callbacks_settled(response.json()):
            return response.json()
        time.sleep(0.5)
    raise AssertionError("the job was not taken over")


def test_many_jobs_at_once_all_finish(client):
    # More than one replica runs at once (4): the rest wait queued and are
    # picked up by the poller as runs finish.
    with ThreadPoolExecutor(max_workers=8) as pool:
        jobs = list(pool.map(lambda i: submit(client, text=f"Job number {i}. {SENTENCE}"), range(8)))
    statuses = [wait_for_job(client, job["job_id"], finished) for job in jobs]
    assert [s["status"] for s in statuses] == ["succeeded"] * 8
    assert len({s["result"]["path"] for s in statuses}) == 8


def test_job_result_carries_captions_that_end_with_its_audio(client):
    job = submit(client, text=CAPTIONED, captions="srt", format="wav")
    status = wait_for_job(client, job["job_id"], finished)
    assert status["status"] == "succeeded", status
    cues = parse_cues(status["result"]["captions"], ",")
    assert cues[0][2] == "The first sentence is short." and len(cues) == 36
    pcm, rate = decode(client.get(f"/v1/tts/jobs/{job['job_id']}/audio").content)
    assert cues[-1][1] == pytest.approx(len(pcm) / rate, abs=0.0015)
