"""The burst's tally and report (loadtests/burst_report.py), and its metrics
read from a real Prometheus exposition served on loopback."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from loadtests.burst_report import Tally, format_report, report, scrape


@pytest.mark.parametrize(
    ("status", "seconds", "headers", "expected"),
    [
        (200, 12.0, {"x-chunk-count": "9"}, {"answered": 1, "answered_chunks": 9, "slowest_answer_s": 12.0}),
        (200, 61.0, {"x-chunk-count": "3"},
         {"answered": 1, "answered_late": 1, "answered_chunks": 3, "slowest_answer_s": 61.0}),
        (503, 0.4, {"retry-after": "17"}, {"refused": 1, "slowest_refusal_s": 0.4, "retry_after_s": [17]}),
        # A 503 without Retry-After is not the service refusing as meant.
        (503, 0.4, {}, {"other": {"503": 1}}),
        ("timeout", 60.0, {}, {"timed_out": 1}),
        (500, 1.0, {}, {"other": {"500": 1}}),
        ("error", 1.0, {}, {"other": {"error": 1}}),
    ],
)
def test_each_answer_is_tallied_once_by_what_it_was(status, seconds, headers, expected):
    tally = Tally()
    tally.add(status, seconds, 60.0, headers)
    fresh = Tally()
    changed = {key: value for key, value in vars(tally).items() if value != getattr(fresh, key)}
    assert changed == expected


def exposition(registry_setup) -> bytes:
    registry = CollectorRegistry()
    registry_setup(registry)
    return generate_latest(registry)


def chunk_counters(synthesized: int, client_left: int, running: int, other_app: int):
    def setup(registry):
        chunks = Counter("ray_voicegraph_chunks", "", ["application", "engine", "outcome"], registry=registry)
        chunks.labels("voicegraph", "piper", "ok").inc(synthesized)
        chunks.labels("voicegraph", "piper", "failed").inc(5)  # not synthesized
        chunks.labels("other", "piper", "ok").inc(other_app)  # another application's
        taken = Counter("ray_voicegraph_chunks_cancelled", "", ["application", "reason"], registry=registry)
        taken.labels("voicegraph", "client_left").inc(client_left)
        at_synth = Counter(
            "ray_voicegraph_synthesizer_chunks_cancelled", "", ["application", "engine", "stage"], registry=registry
        )
        at_synth.labels("voicegraph", "piper", "running").inc(running)
        at_synth.labels("voicegraph", "piper", "waiting").inc(client_left - running)

    return setup


@pytest.fixture
def metrics_server():
    """A loopback HTTP server answering /metrics with whatever `body` holds."""
    body = {"text": b""}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body["text"])

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics", body
    server.shutdown()
    server.server_close()


def test_the_report_counts_the_chunks_made_for_nobody_from_the_services_metrics(metrics_server):
    url, body = metrics_server
    body["text"] = exposition(chunk_counters(synthesized=10, client_left=0, running=0, other_app=100))
    before = scrape(url, "voicegraph")
    assert before["synthesized"] == 10

    tally = Tally()
    tally.add(200, 30.0, 60.0, {"x-chunk-count": "12"})
    tally.add(503, 0.5, 60.0, {"retry-after": "40"})
    tally.add(503, 0.2, 60.0, {"retry-after": "8"})
    tally.add("timeout", 60.0, 60.0, {})
    body["text"] = exposition(chunk_counters(synthesized=10 + 20, client_left=7, running=2, other_app=500))
    numbers = report(tally, before, scrape(url, "voicegraph"), users=2, requests=4)

    assert numbers["chunks_synthesized"] == 20  # this application's, ok, since the start
    assert numbers["chunks_for_nobody"] == 20 - 12
    assert numbers["chunks_taken_back"] == {"client_left": 7}
    assert numbers["chunks_finished_after_the_client_left"] == 2
    assert numbers["retry_after_s"] == {"min": 8, "max": 40}
    assert (numbers["answered"], numbers["refused"], numbers["timed_out"]) == (1, 2, 1)
    text = format_report(numbers)
    assert "refused       2 (slowest 0.50 s; Retry-After {'min': 8, 'max': 40})" in text
    assert "chunks synthesized 20, for nobody 8" in text


def test_a_service_without_the_newer_counters_reports_them_as_not_counted(metrics_server):
    url, body = metrics_server

    def only_chunks(registry):
        Counter("ray_voicegraph_chunks", "", ["application", "engine", "outcome"], registry=registry).labels(
            "voicegraph", "piper", "ok"
        ).inc(4)

    body["text"] = exposition(only_chunks)
    numbers = report(Tally(), {}, scrape(url, "voicegraph"), users=1, requests=1)
    assert numbers["chunks_taken_back"] == {}
    assert numbers["retry_after_s"] is None
    assert "taken back not counted" in format_report(numbers)
