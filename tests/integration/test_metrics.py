"""The service's metrics as Prometheus scrapes them: Ray's real metrics
endpoint, read with prometheus_client's own parser, before and after real
requests."""

import time
import uuid

import pytest

from tests.helpers.grafana_dashboard import dashboard_series
from tests.helpers.jobs import callbacks_settled, submit, wait_for_job
from tests.helpers.prometheus import scrape, total
from tests.helpers.response_cache import cached
from voicegraph.core.metrics import CATALOGUE

pytestmark = pytest.mark.integration


def test_requests_move_the_metrics_prometheus_scrapes(client, service, receiver):
    before = scrape(service.metrics_url)
    text = f"Metrics check {uuid.uuid4().hex[:8]}. A second sentence follows the first one."
    first = client.post("/v1/tts", json={"text": text})
    assert (first.status_code, first.headers["x-cache"]) == (200, "miss")
    cached(service, text)  # the cache entry is written after the response
    again = client.post("/v1/tts", json={"text": text})
    assert (again.status_code, again.headers["x-cache"]) == (200, "hit")
    streamed = client.post("/v1/tts/stream", json={"text": f"Streamed {uuid.uuid4().hex[:8]}."})
    refused = client.post("/v1/tts", json={"text": ""})
    assert (streamed.status_code, refused.status_code) == (200, 422)
    job = submit(client, text=f"Job {uuid.uuid4().hex[:8]} for the metrics.", callback_url=receiver.url())
    wait_for_job(client, job["job_id"], callbacks_settled)

    expected = {
        ("ray_voicegraph_http_requests_total", (("route", "/v1/tts"), ("status", "200"))): 2,
        ("ray_voicegraph_http_requests_total", (("route", "/v1/tts"), ("status", "422"))): 1,
        ("ray_voicegraph_http_requests_total", (("route", "/v1/tts/stream"), ("status", "200"))): 1,
        ("ray_voicegraph_http_request_latency_s_count", (("route", "/v1/tts"),)): 3,
        ("ray_voicegraph_chunks_total", (("engine", "espeak"), ("outcome", "ok"))): 3,
        ("ray_voicegraph_chunk_latency_s_count", (("engine", "espeak"),)): 3,
        ("ray_voicegraph_real_time_factor_count", (("engine", "espeak"),)): 3,
        ("ray_voicegraph_time_to_first_audio_s_count", ()): 1,
        ("ray_voicegraph_response_cache_total", (("result", "hit"),)): 1,
        ("ray_voicegraph_response_cache_total", (("result", "miss"),)): 1,
        ("ray_voicegraph_job_runs_total", (("outcome", "succeeded"),)): 1,
        ("ray_voicegraph_job_duration_s_count", (("outcome", "succeeded"),)): 1,
        ("ray_voicegraph_callback_deliveries_total", (("outcome", "delivered"),)): 1,
    }
    # Replicas report every second (the session's Ray setting): wait for it.
    deadline = time.monotonic() + 30
    while True:
        after = scrape(service.metrics_url)
        moved = {
            key: total(after, key[0], **dict(key[1])) - total(before, key[0], **dict(key[1]))
            for key in expected
        }
        if all(moved[key] >= least for key, least in expected.items()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert {key: value for key, value in moved.items() if value < expected[key]} == {}

    # Audio seconds: what the engine made, so at most what the responses hold.
    audio_s = total(after, "ray_voicegraph_audio_seconds_total", engine="espeak") - total(
        before, "ray_voicegraph_audio_seconds_total", engine="espeak"
    )
    assert 0 < audio_s
    # Gauges from the job database: the job is counted, the outbox is empty.
    assert total(after, "ray_voicegraph_jobs", status="succeeded") >= 1
    assert total(after, "ray_voicegraph_callback_outbox_depth") == 0
    # Routes are templates, never raw paths with ids in them.
    routes = {labels["route"] for name, labels, _ in after if name == "ray_voicegraph_http_requests_total"}
    assert "/v1/tts/jobs/{job_id}" in routes
    assert not any(job["job_id"] in route for route in routes)


def test_every_catalogued_metric_and_the_dashboards_serve_series_are_exported(client, service):
    """What the dashboard and docs/operations.md promise exists once it has a value."""
    deadline = time.monotonic() + 30
    while True:
        names = {name for name, _, _ in scrape(service.metrics_url)}
        missing = sorted(series for series in dashboard_series() if series.startswith("ray_serve_") and series not in names)
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert missing == []
    # Ours that every earlier request has recorded by now (the others need a
    # fault: retries, resends, overload, upload failures, expired callbacks).
    for name in ("voicegraph_http_requests", "voicegraph_chunks", "voicegraph_jobs"):
        assert set(CATALOGUE[name].exported) & names, name
