"""What an operator relies on, on the real local Ray: a flood is refused fast
and cleanly, the Synthesizer scales up under load and back down after it, and
a redeploy in the middle of traffic loses no request and no job.

One application with small queues and short autoscaling delays, so each of
these happens within seconds. Timings are printed for the notes, never asserted.
"""

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.helpers.audio import decode
from tests.helpers.jobs import finished
from tests.helpers.local_serve import Service
from tests.helpers.texts import long_text
from voicegraph.core.settings import Settings

pytestmark = pytest.mark.integration

APP = "voicegraph-ops"


def ops_settings(storage_root, **changes) -> Settings:
    return Settings(
        engine="espeak",
        storage_root=storage_root,
        response_cache={"enabled": False},
        synthesizer={
            "min_replicas": 1,
            "max_replicas": 2,
            "target_ongoing_requests": 1,
            "upscale_delay_s": 0,
            "downscale_delay_s": 2,
            "look_back_period_s": 1,
            # Two chunks at a time per replica, four more waiting per ingress
            # replica (beyond that, admitted chunks wait their turn).
            "max_ongoing_requests": 2,
            "max_queued_requests": 4,
            "num_cpus": 0.1,
            "graceful_shutdown_wait_loop_s": 0.2,
        },
        ingress={"num_replicas": 2, "num_cpus": 0.1, "graceful_shutdown_timeout_s": 60, "graceful_shutdown_wait_loop_s": 0.2},
        # A long lease: a job handed back by a stopping replica is run again at
        # once, not after the lease runs out.
        jobs={"lease_s": 120, "heartbeat_s": 0.5, "poll_interval_s": 0.3, "max_running_per_replica": 1},
        # About two requests of the flood's length under way per ingress
        # replica; a few clients fill it.
        max_chunks_in_flight=12,
        overload_retry_after_s=1,
        log_encoding="JSON",
        **changes,
    )


@pytest.fixture(scope="module")
def ops_service(service, tmp_path_factory) -> Service:
    from ray import serve

    from serve_app.app import build_app

    settings = ops_settings(tmp_path_factory.mktemp("ops-storage"))
    serve.run(build_app(settings), name=APP, route_prefix="/ops")
    yield Service(f"{service.url}/ops", settings.storage_root, settings, service.metrics_url)
    serve.delete(APP)


def synthesizer_replicas() -> int:
    from ray import serve

    states = serve.status().applications[APP].deployments["Synthesizer-espeak"].replica_states
    return states.get("RUNNING", 0)


class Load:
    """Clients in threads sending requests until stopped; every answer kept."""

    def __init__(self, url: str, clients: int, characters: int):
        self.url, self.characters = url, characters
        self.statuses: Counter = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]

    def _client(self, number: int) -> None:
        with httpx.Client(base_url=self.url, timeout=120) as client:
            i = 0
            while not self._stop.is_set():
                text = long_text(self.characters, start=number * 100_000 + i)
                try:
                    response = client.post("/v1/tts", json={"text": text})
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                self.statuses[response.status_code] += 1
                if response.status_code != 200 and response.status_code != 503:
                    self.failures.append(f"{response.status_code} {response.text[:200]}")
                i += 1

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)


def wait_until(predicate, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"{what} did not happen within {timeout} s"
        time.sleep(0.25)
    return time.monotonic() - started


async def flood(url: str, requests: int, text: str) -> list[tuple[int, dict, str, float]]:
    async def one(client: httpx.AsyncClient):
        started = time.monotonic()
        response = await client.post("/v1/tts", json={"text": text})
        return response.status_code, dict(response.headers), response.text if response.status_code != 200 else "", time.monotonic() - started

    limits = httpx.Limits(max_connections=requests, max_keepalive_connections=requests)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        return await asyncio.gather(*(one(client) for _ in range(requests)))


def test_a_flood_is_refused_at_once_with_503_and_retry_after_and_the_service_recovers(ops_service):
    text = long_text(1500, start=7_000_000)
    started = time.monotonic()
    answers = asyncio.run(flood(ops_service.url, 60, text))
    flood_s = time.monotonic() - started
    statuses = Counter(status for status, *_ in answers)
    refused = [answer for answer in answers if answer[0] == 503]
    print(f"\nflood: {len(answers)} requests in {flood_s:.1f} s: {dict(statuses)}")
    assert set(statuses) <= {200, 503}, statuses  # no 500, no other failure
    assert refused, "the flood never filled the queues: nothing to show"
    assert statuses[200] > 0
    for _, headers, body, _ in refused:
        assert headers["content-type"] == "application/json"
        assert headers["retry-after"] == "1"
        error = httpx.Response(503, content=body).json()["error"]
        assert error["code"] == "overloaded" and "retry after" in error["message"] and error["request_id"]
    slowest_refusal = max(seconds for *_, seconds in refused)
    slowest_success = max(seconds for status, *_, seconds in answers if status == 200)
    print(f"slowest 503: {slowest_refusal:.2f} s; slowest 200: {slowest_success:.2f} s")

    # Once the flood is over, the next request is served.
    recovered_in = wait_until(
        lambda: httpx.post(f"{ops_service.url}/v1/tts", json={"text": text}, timeout=60).status_code == 200,
        30, "recovery",
    )
    print(f"recovered {recovered_in:.2f} s after the flood ended")


def test_the_synthesizer_scales_up_under_load_and_back_down_after_it(ops_service):
    wait_until(lambda: synthesizer_replicas() == 1, 60, "settling at min_replicas")
    seen = [synthesizer_replicas()]
    with Load(ops_service.url, clients=4, characters=600) as load:
        up_in = wait_until(lambda: synthesizer_replicas() == 2, 90, "scaling up to max_replicas")
        seen.append(synthesizer_replicas())
    down_in = wait_until(lambda: synthesizer_replicas() == 1, 90, "scaling back down")
    seen.append(synthesizer_replicas())
    print(f"\nSynthesizer replicas: {seen}; up {up_in:.1f} s into the load, down {down_in:.1f} s after it; answers {dict(load.statuses)}")
    assert seen == [1, 2, 1]
    assert load.failures == []


def test_a_redeploy_in_the_middle_of_traffic_loses_no_request_and_no_job(ops_service, service, tmp_path_factory):
    from ray import serve

    from serve_app.app import build_app
    from tests.helpers.prometheus import scrape, total

    def resends() -> float:
        return total(scrape(service.metrics_url), "ray_voicegraph_replica_fault_resends_total", application=APP)

    resends_before = resends()
    with httpx.Client(base_url=ops_service.url, timeout=120) as client:
        jobs = []
        for i in range(4):
            response = client.post("/v1/tts/jobs", json={"text": long_text(13_000, start=8_000_000 + i * 1000)})
            assert response.status_code == 202, response.text
            jobs.append(response.json()["job_id"])
        # Two clients, short texts, beside the jobs' chunks.
        with Load(ops_service.url, clients=2, characters=200) as load:
            time.sleep(1)
            # Every replica of every deployment is replaced (new bind args), old
            # ones stopped while they hold requests, chunks and jobs.
            redeployed = ops_settings(ops_service.storage_root, request_timeout_s=299)
            started = time.monotonic()
            serve.run(build_app(redeployed), name=APP, route_prefix="/ops")
            redeploy_s = time.monotonic() - started
            time.sleep(2)
        print(f"\nredeploy took {redeploy_s:.1f} s under load: answers {dict(load.statuses)}")
        # Every request answered: served, or refused at once while the jobs
        # filled the chunk budget; none cut off by a stopping replica.
        assert load.failures == [] and set(load.statuses) <= {200, 503} and load.statuses[200] > 0
        results = {}
        for job_id in jobs:
            deadline = time.monotonic() + 180
            while not finished(status := client.get(f"/v1/tts/jobs/{job_id}").json()):
                assert time.monotonic() < deadline, status
                time.sleep(0.3)
            results[job_id] = status
        assert {job_id: status["status"] for job_id, status in results.items()} == dict.fromkeys(jobs, "succeeded")
        # Each job's audio is whole: as long as the service says.
        for job_id, status in results.items():
            samples, rate = decode(client.get(f"/v1/tts/jobs/{job_id}/audio").content)
            assert len(samples) / rate == pytest.approx(status["result"]["duration_s"], abs=0.05)
    # Stopped Synthesizer replicas finished their chunks: none had to be resent.
    assert resends() == resends_before
    print(f"jobs handed back by stopping ingress replicas: {len(handed_back_lines())}")


def handed_back_lines() -> list[str]:
    import ray

    logs = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"
    return [
        line
        for path in logs.glob(f"replica_{APP}_Ingress_*.log")
        for line in path.read_text(errors="replace").splitlines()
        if "handed back to the queue" in line
    ]
