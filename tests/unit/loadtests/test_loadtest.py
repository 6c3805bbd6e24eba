"""The load test's ramp, options and summary, without Locust (it only runs in a subprocess)."""

import argparse
import json

import pytest

from loadtests.loadtest import Entry, read_exceptions, read_failures, read_notes, read_stats, summarize
from loadtests.locust_options import OPTIONS, add_arguments, peak_users, shape_total_s, users_at

HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
    "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)


def stats_row(type_, name, count, fails, p50, p95, p99, rps):
    return f"{type_},{name},{count},{fails},{p50},1.0,1.0,1.0,100.0,{rps},0.0,{p50},1,1,1,1,{p95},1,{p99},1,1,1"


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (0.0, 1),  # a ramp starts with one user at once
        (2.5, 2),  # 6 * 2.5 / 10 rounded up
        (5.01, 4),
        (9.99, 6),
        (10.0, 6),  # the hold
        (49.99, 6),
        (50.0, 6),  # the ramp-down starts at the peak
        (55.0, 3),
        (59.99, 1),  # never below one user before the end
        (60.0, None),
        (1000.0, None),
    ],
)
def test_ramp_hold_ramp(elapsed, expected):
    assert users_at(elapsed, 6, 10.0, 40.0, 10.0) == expected


@pytest.mark.parametrize(
    ("ramps", "elapsed", "expected"),
    [
        ((0.0, 5.0, 0.0), 0.0, 4),  # no ramp: the peak at once
        ((0.0, 5.0, 0.0), 4.99, 4),
        ((0.0, 5.0, 0.0), 5.0, None),
        ((0.0, 0.0, 0.0), 0.0, None),
    ],
)
def test_ramps_of_zero_seconds(ramps, elapsed, expected):
    assert users_at(elapsed, 4, *ramps) == expected


@pytest.mark.parametrize(
    ("argv", "env", "peak", "total"),
    [
        ([], {}, 6, 60.0),
        (["--peak-users", "20", "--hold", "300"], {}, 20, 320.0),
        ([], {"LOADTEST_USERS": "9", "LOADTEST_HOLD_S": "1.5"}, 9, 21.5),
        (["--peak-users", "3"], {"LOADTEST_USERS": "9"}, 3, 60.0),  # a flag wins over its variable
        (["--each", "2"], {}, 12, 60.0),  # two of each of the six user classes
    ],
)
def test_options_from_flags_and_environment(monkeypatch, argv, env, peak, total):
    for option in OPTIONS:
        monkeypatch.delenv(option.env, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = parser.parse_args(argv)
    assert (peak_users(options), shape_total_s(options)) == (peak, total)


@pytest.mark.parametrize(
    ("rows", "expected_entries", "expected_aggregated"),
    [
        (
            [
                stats_row("POST", "/v1/tts (short)", 10, 1, 300, 900, 1000, 2.5),
                stats_row("TTFA", "/v1/tts/stream", 4, 0, 120, 200, 210, 1.0),
                stats_row("", "Aggregated", 14, 1, 250, 900, 1000, 3.5),
            ],
            [
                Entry("POST", "/v1/tts (short)", 10, 1, 300.0, 900.0, 1000.0, 2.5),
                Entry("TTFA", "/v1/tts/stream", 4, 0, 120.0, 200.0, 210.0, 1.0),
            ],
            Entry("", "Aggregated", 14, 1, 250.0, 900.0, 1000.0, 3.5),
        ),
        # An entry without requests has no percentiles.
        (
            [stats_row("GET", "/v1/tts/jobs/[id]", 0, 0, "N/A", "N/A", "N/A", 0.0)],
            [Entry("GET", "/v1/tts/jobs/[id]", 0, 0, None, None, None, 0.0)],
            None,
        ),
        ([], [], None),
    ],
)
def test_read_stats(tmp_path, rows, expected_entries, expected_aggregated):
    path = tmp_path / "locust_stats.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    assert read_stats(path) == (expected_entries, expected_aggregated)


@pytest.mark.parametrize(
    ("csv_text", "expected"),
    [
        (None, []),  # no file
        ("Method,Name,Error,Occurrences\n", []),
        (
            "Method,Name,Error,Occurrences\n"
            "POST,/v1/tts (long),CatchResponseError('HTTP 422: text_too_long'),3\n"
            "JOB,/v1/tts/jobs (submit to succeeded),CatchResponseError(\"job failed: engine_error\"),7\n"
            "GET,/health,\"ConnectionError(MaxRetryError('refused'))\",1\n",
            [
                ("JOB /v1/tts/jobs (submit to succeeded)", "job failed: engine_error", 7),
                ("POST /v1/tts (long)", "HTTP 422: text_too_long", 3),
                ("GET /health", "ConnectionError(MaxRetryError('refused'))", 1),
            ],
        ),
    ],
)
def test_read_failures(tmp_path, csv_text, expected):
    path = tmp_path / "locust_failures.csv"
    if csv_text is not None:
        path.write_text(csv_text)
    assert read_failures(path) == expected


def test_summary(tmp_path):
    prefix = tmp_path / "locust"
    rows = [
        stats_row("POST", "/v1/tts (short)", 30, 3, 300, 900, 1000, 3.0),
        stats_row("POST", "/v1/tts/stream", 10, 0, 800, 1500, 1600, 1.0),
        stats_row("TTFA", "/v1/tts/stream", 10, 0, 120, 200, 210, 1.0),
        stats_row("", "Aggregated", 50, 3, 300, 1500, 1600, 5.0),
    ]
    (tmp_path / "locust_stats.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    (tmp_path / "locust_failures.csv").write_text(
        "Method,Name,Error,Occurrences\nPOST,/v1/tts (short),CatchResponseError('HTTP 503: overloaded'),3\n"
    )
    notes = {"engine": "piper", "model": "en_us-joe-medium", "can_clone": False,
             "skipped": {"CloneUser": "engine piper cannot clone"}}
    (tmp_path / "locust_voicegraph.json").write_text(json.dumps(notes))
    (tmp_path / "locust_exceptions.csv").write_text(
        'Count,Message,Traceback,Nodes\n2,"KeyError(\'job_id\')","  File ""locustfile.py""",local\n'
    )

    lines = summarize(prefix, "title").splitlines()
    assert lines == [
        "title",
        "engine: piper (en_us-joe-medium), can_clone: False",
        "entry                   reqs  fails   p50 ms   p95 ms   p99 ms   req/s",
        "POST /v1/tts (short)      30      3      300      900    1,000    3.00",
        "POST /v1/tts/stream       10      0      800    1,500    1,600    1.00",
        "TTFA /v1/tts/stream       10      0      120      200      210    1.00",
        "time to first audio byte (/v1/tts/stream): p50 120 ms, p95 200 ms, p99 210 ms over 10 streams",
        # TTFA times streams already counted: not in the totals, nor in their rate (40 of 50 entries' 5/s).
        "HTTP total: 40 requests, 3 failed (7.5%), 4.00 requests/s",
        "skipped: CloneUser: engine piper cannot clone",
        "failures:",
        "  3 x POST /v1/tts (short): HTTP 503: overloaded",
        f"exceptions in the users' code (tracebacks in {prefix}_exceptions.csv):",
        "  2 x KeyError('job_id')",
    ]
    assert read_notes(tmp_path / "absent.json") == {}
    assert read_exceptions(tmp_path / "absent.csv") == []
