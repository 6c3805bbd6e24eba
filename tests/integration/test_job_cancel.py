"""Cancelling jobs on the real graph: queued ones never start, running ones
stop, callbacks say so, and a restart of the runner changes nothing."""

import time

import httpx
import pytest

from tests.helpers.jobs import deliveries
from tests.helpers.local_serve import replicas
from tests.helpers.texts import long_text
from tests.integration.conftest import SERVERLESS_KEY

pytestmark = pytest.mark.integration

# eSpeak speaks this many characters in several seconds on one replica: long
# enough that a job is still running when the test cancels it.
LONG = 150_000


@pytest.fixture()
def sls(serverless_service):
    headers = {"Authorization": f"Bearer {SERVERLESS_KEY}"}
    with httpx.Client(base_url=serverless_service.url, timeout=120, headers=headers) as http:
        yield http


def submit(sls, text: str, **fields) -> str:
    response = sls.post("/v1/tts/jobs", json={"text": text, **fields})
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def wait_for(sls, job_id: str, done, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = sls.get(f"/v1/tts/jobs/{job_id}")
            # Serve's proxy answers 500 for a request it sent to the replica as it died.
            status = response.json() if response.status_code != 500 else {}
        except httpx.HTTPError:
            status = {}  # no ingress replica for a moment (it is restarting)
        if status and done(status):
            return status
        assert time.monotonic() < deadline, f"never got there: {status}"
        time.sleep(0.1)


def test_queued_and_running_jobs_are_cancelled_for_good(sls, serverless_service, receiver):
    import ray

    callback = receiver.url("/api/tts/callback")
    running = submit(sls, long_text(LONG, start=101), callback_url=callback)
    wait_for(sls, running, lambda s: s["progress"]["chunks_done"] > 0)
    queued = submit(sls, long_text(300, start=102), callback_url=callback)  # the one runner slot is taken

    first = sls.post(f"/v1/tts/jobs/{queued}/cancel")
    assert first.status_code == 200, first.text
    assert (first.json()["status"], first.json()["attempts"]) == ("cancelled", 0)
    stopped = sls.post(f"/v1/tts/jobs/{running}/cancel")
    assert stopped.status_code == 200, stopped.text
    body = stopped.json()
    assert body["status"] == "cancelled" and body["error"]["code"] == "cancelled"
    assert body["progress"]["chunks_done"] < body["progress"]["chunks_total"]
    # Cancelling again changes nothing.
    assert sls.post(f"/v1/tts/jobs/{running}/cancel").json()["updated_at"] == body["updated_at"]

    # The runner's replica dies: the replica Serve starts in its place takes nothing over.
    (victim,) = replicas("Ingress", app="voicegraph-serverless")
    ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
    after = wait_for(sls, running, lambda s: s["status"] == "cancelled" and all(c["state"] == "delivered" for c in s["callbacks"]))
    jobs = serverless_service.settings.jobs
    time.sleep(jobs.lease_s + 3 * jobs.poll_interval_s)  # time for a wrong takeover to show
    for job_id, attempts in ((running, 1), (queued, 0)):
        final = sls.get(f"/v1/tts/jobs/{job_id}").json()
        assert (final["status"], final["attempts"], final["result"]) == ("cancelled", attempts, None)
        assert sls.get(f"/v1/tts/jobs/{job_id}/audio").status_code == 404
        (delivered,) = deliveries(receiver, job_id)
        assert delivered.json["error_details"] == {"code": "cancelled"}
        assert delivered.path == "/api/tts/error-callback"
    assert after["finished_at"] is not None


def test_a_finished_job_cannot_be_cancelled(sls):
    job_id = submit(sls, "A short one.")
    wait_for(sls, job_id, lambda s: s["status"] == "succeeded")
    response = sls.post(f"/v1/tts/jobs/{job_id}/cancel")
    assert response.status_code == 409, response.text
    assert "is succeeded; only a queued or running job can be cancelled" in response.json()["error"]["message"]
    assert sls.get(f"/v1/tts/jobs/{job_id}").json()["status"] == "succeeded"
