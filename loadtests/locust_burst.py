"""A burst of several times what the service can do, from clients with a timeout.

    .venv/bin/locust -f loadtests/locust_burst.py --headless --host http://127.0.0.1:8000 \
        --burst-users 96 --requests-per-user 2 --chars 4000 --client-timeout 60

Every user starts at once, sends its requests one after another (each with
`--client-timeout`, told to the service as X-Request-Timeout unless
--no-deadline), and is done. At the end the summary says how many were
answered, refused (503 with Retry-After) and timed out on the client, and,
from the service's metrics (--metrics-url, Ray's Prometheus endpoint, which
`make serve` puts on port 8080), how many chunks were synthesized that no
client received. docs/performance.md, "Bursts", has numbers from it.
"""

from __future__ import annotations

import time

import gevent
import requests
from burst_report import Tally, format_report, report, scrape, write
from load_texts import long_text
from locust import HttpUser, LoadTestShape, constant, events, task

TALLY = Tally()
STATE: dict = {"done": 0, "before": {}}


@events.init_command_line_parser.add_listener
def add_options(parser):
    group = parser.add_argument_group("voicegraph burst")
    group.add_argument("--burst-users", type=int, default=96, help="clients, all started at once")
    group.add_argument("--requests-per-user", type=int, default=2, help="requests each client sends, one after another")
    group.add_argument("--chars", type=int, default=4000, help="characters of each request's text")
    group.add_argument("--format", default="mp3", help="audio format asked for")
    group.add_argument("--client-timeout", type=float, default=60.0, help="seconds a client waits for its answer")
    group.add_argument(
        "--no-deadline", action="store_true", help="do not tell the service the timeout (X-Request-Timeout)"
    )
    group.add_argument(
        "--metrics-url", default="http://127.0.0.1:8080/metrics", help="Ray's Prometheus endpoint; empty: none"
    )
    group.add_argument("--application", default="voicegraph", help="the Serve application's name in the metrics")
    group.add_argument(
        "--settle", type=float, default=20.0, help="seconds before and after the burst for the metrics to catch up"
    )
    group.add_argument("--max-duration", type=float, default=600.0, help="seconds the burst may last at most")
    group.add_argument("--summary-json", default="", help="where to write the numbers as JSON")


def _chunk_counts(options) -> dict[str, float]:
    if not options.metrics_url:
        return {}
    try:
        return scrape(options.metrics_url, options.application)
    except Exception as exc:  # noqa: BLE001 - the answers still count without the metrics
        print(f"metrics not read from {options.metrics_url}: {exc!r}")
        return {}


@events.test_start.add_listener
def before_burst(environment, **_):
    options = environment.parsed_options
    # Chunks of a warm-up just before must be exported before they are
    # counted, or the burst is charged with them.
    if options.metrics_url:
        gevent.sleep(options.settle)
    STATE["before"] = _chunk_counts(options)
    STATE["started"] = time.monotonic()


@events.test_stop.add_listener
def after_burst(environment, **_):
    options = environment.parsed_options
    # Ray exports a replica's metrics every few seconds, and chunks under way
    # when a client left still finish: give both time.
    if options.metrics_url:
        gevent.sleep(options.settle)
    after = _chunk_counts(options)
    numbers = report(
        TALLY, STATE["before"], after, options.burst_users, options.burst_users * options.requests_per_user
    )
    print(format_report(numbers), flush=True)
    if options.summary_json:
        write(numbers, options.summary_json)


class BurstUser(HttpUser):
    wait_time = constant(0)

    def on_start(self):
        self.sent = 0

    @task
    def speak(self):
        options = self.environment.parsed_options
        if self.sent >= options.requests_per_user:
            gevent.sleep(1)  # done: the shape ends the test once every user is
            return
        self.sent += 1
        headers = {} if options.no_deadline else {"X-Request-Timeout": f"{options.client_timeout:g}"}
        body = {"text": long_text(options.chars), "format": options.format}
        started = time.monotonic()
        with self.client.post(
            "/v1/tts", json=body, headers=headers, timeout=options.client_timeout, catch_response=True, name="/v1/tts"
        ) as response:
            seconds = time.monotonic() - started
            if isinstance(response.error, requests.Timeout):
                TALLY.add("timeout", seconds, options.client_timeout, {})
                response.failure("client timeout")
            else:
                status = response.status_code if response.error is None or response.status_code else "error"
                TALLY.add(status, seconds, options.client_timeout, {k.lower(): v for k, v in response.headers.items()})
                if status in (200, 503):
                    response.success()  # a refusal with Retry-After is the service working as meant
        STATE["done"] += 1


class BurstShape(LoadTestShape):
    """Every user at once; over when every request is answered (or --max-duration)."""

    def tick(self):
        options = self.runner.environment.parsed_options
        total = options.burst_users * options.requests_per_user
        if STATE["done"] >= total or self.get_run_time() > options.max_duration:
            return None
        return options.burst_users, options.burst_users
