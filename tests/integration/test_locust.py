"""The Locust load test (`make loadtest`), run briefly against the real graph.

Locust patches the standard library with gevent, so it only ever runs in a
subprocess (loadtests/loadtest.py, which starts Locust); this process reads the
CSVs it leaves with the runner's own parsing. No timing is asserted."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.loadtest import read_exceptions, read_failures, read_notes, read_stats
from tests.integration.conftest import API_KEYS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# Every entry the locustfile reports, one user class after another.
ENTRIES = {
    "POST /v1/tts (short)",
    "POST /v1/tts (long)",
    "POST /v1/tts/stream",
    "TTFA /v1/tts/stream",
    "POST /v1/audio/speech",
    "POST /v1/tts/jobs",
    "GET /v1/tts/jobs/[id]",
    "JOB /v1/tts/jobs (submit to succeeded)",
    "GET /v1/tts/jobs/[id]/audio",
    "POST /v1/tts (reference clip)",
    "POST /v1/voices",
    "POST /v1/tts (cloned voice)",
    "DELETE /v1/voices/[id]",
}

# A few seconds, small texts, no pauses. The users finish their task after the
# ramp (--stop-timeout), so every class completes at least one.
SHORT_RUN = ["--ramp-up", "0", "--hold", "4", "--ramp-down", "0", "--stop-timeout", "30",
             "--long-chars", "600", "--wait-min", "0", "--wait-max", "0.3", "--job-poll", "0.2"]


def run_loadtest(url: str, results: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "loadtests/loadtest.py", "--host", url, "--results-dir", str(results), *args]
    # Only the flags here count: not a developer's LOADTEST_* settings, nor a key the test service does not use.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_") and k != "VOICEGRAPH_API_KEY"}
    # A session of its own, so a run that hangs is killed with the Locust it started.
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=150)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return subprocess.CompletedProcess(command, process.returncode, output, "")


def locust_log(results: Path) -> str:
    path = results / "locust.log"
    return path.read_text()[-4000:] if path.exists() else "(no locust.log)"


def test_every_user_class_runs_without_failures(service, tmp_path):
    run = run_loadtest(service.url, tmp_path, "--each", "1", *SHORT_RUN)
    assert run.returncode == 0, f"{run.stdout}\n{locust_log(tmp_path)}"

    entries, aggregated = read_stats(tmp_path / "locust_stats.csv")
    by_label = {entry.label: entry for entry in entries}
    assert set(by_label) == ENTRIES, run.stdout
    for label, entry in by_label.items():
        assert entry.requests >= 1, label
        assert entry.failures == 0, label
    assert aggregated.requests == sum(entry.requests for entry in entries)
    assert read_failures(tmp_path / "locust_failures.csv") == []
    assert read_exceptions(tmp_path / "locust_exceptions.csv") == []
    notes = read_notes(tmp_path / "locust_voicegraph.json")
    assert (notes["engine"], notes["can_clone"], notes["skipped"]) == ("espeak", True, {})
    # The summary is printed and kept, with a row per entry.
    assert (tmp_path / "summary.txt").read_text().strip() in run.stdout
    for label in ENTRIES:
        assert label in run.stdout
    assert "HTTP total:" in run.stdout and "time to first audio byte" in run.stdout


def test_a_keyed_service_gets_the_key_on_every_request(keyed_service, tmp_path):
    """API keys on: a 401 on any route, the multipart upload and the DELETE included, would fail the run."""
    run = run_loadtest(keyed_service.url, tmp_path, "--api-key", API_KEYS["app"], "--each", "1", *SHORT_RUN,
                       "--hold", "2", "--long-chars", str(keyed_service.settings.max_text_chars))
    assert run.returncode == 0, f"{run.stdout}\n{locust_log(tmp_path)}"
    entries, _ = read_stats(tmp_path / "locust_stats.csv")
    assert {entry.label for entry in entries} == ENTRIES
    assert sum(entry.failures for entry in entries) == 0


def test_failed_requests_fail_the_run_and_are_reported(service, tmp_path):
    """Texts over the service's limit: every long request is refused, and the run says so."""
    too_long = str(service.settings.max_text_chars + 500)
    run = run_loadtest(service.url, tmp_path, "LongTextUser", "--peak-users", "1", *SHORT_RUN,
                       "--hold", "1", "--long-chars", too_long)
    assert run.returncode == 1, f"{run.stdout}\n{locust_log(tmp_path)}"

    entries, _ = read_stats(tmp_path / "locust_stats.csv")
    assert [(e.label, e.requests == e.failures > 0) for e in entries] == [("POST /v1/tts (long)", True)]
    [(entry, error, count)] = read_failures(tmp_path / "locust_failures.csv")
    assert (entry, error) == ("POST /v1/tts (long)", "HTTP 422: text_too_long")
    assert f"{count} x POST /v1/tts (long): HTTP 422: text_too_long" in run.stdout


def test_the_burst_shape_reports_what_every_client_got(service, tmp_path):
    """loadtests/locust_burst.py, small: every request is tallied once, and
    the chunks counted from the service's metrics are the ones clients got."""
    summary = tmp_path / "burst.json"
    command = [
        sys.executable, "-m", "locust", "-f", "locust_burst.py", "--headless", "--only-summary",
        "--host", service.url, "--burst-users", "4", "--requests-per-user", "2", "--chars", "300",
        "--client-timeout", "60", "--metrics-url", service.metrics_url, "--settle", "12",
        "--max-duration", "120", "--summary-json", str(summary),
    ]
    run = subprocess.run(command, cwd=REPO / "loadtests", capture_output=True, text=True, timeout=240)
    assert summary.exists(), run.stdout + run.stderr
    numbers = json.loads(summary.read_text())
    assert numbers["requests"] == 8
    assert numbers["answered"] + numbers["refused"] + numbers["timed_out"] + sum(numbers["other"].values()) == 8
    assert numbers["timed_out"] == 0 and numbers["other"] == {} and numbers["answered"] >= 1
    # Other tests' traffic on the same application may land inside the window, never less than what clients got.
    assert numbers["chunks_synthesized"] >= numbers["answered_chunks"] > 0
    assert "burst: 4 users, 8 requests" in run.stdout
