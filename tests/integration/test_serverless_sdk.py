"""The serverless platform's own Python SDK, pointed at this service by its
base URL (RUNPOD_ENDPOINT_BASE_URL), with an API key: what a migrating client
changes, and nothing else."""

import base64
import importlib
import sys

import httpx
import pytest

from tests.helpers.audio import decode
from tests.helpers.texts import long_text
from tests.integration.conftest import SERVERLESS_KEY

pytestmark = pytest.mark.integration

ENDPOINT = "voicegraph"


@pytest.fixture(scope="module")
def runpod(serverless_service):
    """The SDK reads its base URL from the environment when imported."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RUNPOD_ENDPOINT_BASE_URL", f"{serverless_service.url}/v2")
        sdk = importlib.reload(sys.modules["runpod"]) if "runpod" in sys.modules else importlib.import_module("runpod")
        patch.setattr(sdk, "api_key", SERVERLESS_KEY)
        yield sdk


def audio_of(output: dict):
    return decode(base64.b64decode(output["audio_base64"]))


def test_simple_run_polled_to_its_output(runpod):
    job = runpod.Endpoint(ENDPOINT).run({"input": {"text": "Hello from the platform's own client.", "format": "mp3"}})
    output = job.output(timeout=120)
    assert job.status() == "COMPLETED"
    pcm, rate = audio_of(output)
    assert len(pcm) / rate == pytest.approx(output["duration_s"], abs=0.1)
    assert output["content_type"] == "audio/mpeg"


def test_run_sync_answers_the_output(runpod):
    output = runpod.Endpoint(ENDPOINT).run_sync({"input": {"text": "Synchronous, please."}}, timeout=120)
    assert audio_of(output)[0].size > 0


def test_batch_streams_each_section_once_in_order_then_outputs_all(runpod):
    sections = [{"id": f"part-{i}", "text": long_text(300, start=200 + i)} for i in range(3)]
    job = runpod.Endpoint(ENDPOINT).run({"input": {"sections": sections, "delivery": "url"}})
    streamed = list(job.stream())
    assert [item["id"] for item in streamed] == ["part-0", "part-1", "part-2"]
    assert all(item["status"] == "succeeded" and item["audio"]["download_url"] for item in streamed)
    output = job.output(timeout=120)
    assert [section["id"] for section in output["sections"]] == ["part-0", "part-1", "part-2"]


def test_cancel_health_and_purge(runpod, serverless_service):
    endpoint = runpod.Endpoint(ENDPOINT)
    running = endpoint.run({"input": {"text": long_text(150_000, start=300)}})
    waiting = [endpoint.run({"input": {"text": long_text(200, start=301 + i)}}) for i in range(2)]
    health = endpoint.health()
    assert health["jobs"]["inProgress"] >= 1 and health["jobs"]["inQueue"] >= 2
    assert health["workers"] == {"idle": 0, "running": 1}

    assert endpoint.purge_queue() == {"removed": 2, "status": "completed"}
    assert [job.status() for job in waiting] == ["CANCELLED", "CANCELLED"]
    cancelled = running.cancel()
    assert cancelled["status"] == "CANCELLED" and cancelled["id"] == running.job_id
    assert running.status() == "CANCELLED"
    status = httpx.get(
        f"{serverless_service.url}/v2/{ENDPOINT}/status/{running.job_id}",
        headers={"Authorization": f"Bearer {SERVERLESS_KEY}"},
    ).json()
    assert status["delayTime"] >= 0 and status["executionTime"] > 0 and "output" not in status
    assert endpoint.health()["jobs"]["failed"] >= 3  # cancelled counts as failed, as the platform's health shows


def test_a_wrong_key_is_refused_as_the_sdk_expects(runpod):
    with pytest.raises(RuntimeError, match="401 Unauthorized"):
        runpod.Endpoint(ENDPOINT, api_key="vg_wrong").run({"input": {"text": "Hi."}})


def test_unprefixed_routes_of_the_local_test_server(serverless_service):
    headers = {"Authorization": f"Bearer {SERVERLESS_KEY}"}
    with httpx.Client(base_url=serverless_service.url, headers=headers, timeout=120) as http:
        run = http.post("/runsync", json={"input": {"text": "The local test server's shape."}}).json()
        assert run["status"] == "COMPLETED"
        for method in ("GET", "POST"):
            assert http.request(method, f"/status/{run['id']}").json()["status"] == "COMPLETED"
        stream = http.post(f"/stream/{run['id']}").json()
        assert stream["status"] == "COMPLETED" and len(stream["stream"]) == 1
        assert http.get(f"/stream/{run['id']}").json()["stream"] == []  # handed out once
        assert http.post(f"/cancel/{run['id']}").json()["status"] == "COMPLETED"  # finished: unchanged
