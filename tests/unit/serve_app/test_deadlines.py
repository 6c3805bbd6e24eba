"""A client's deadline from its headers."""

import time

import pytest
from starlette.requests import Request

from serve_app.deadlines import client_deadline
from voicegraph.core.errors import InvalidTimeoutError


def request_with(headers: dict[str, str]) -> Request:
    raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": "POST", "path": "/v1/tts", "headers": raw})


def left_s(headers: dict[str, str]) -> float | None:
    deadline = client_deadline(request_with(headers), headers.get("X-Request-Timeout"))
    return None if deadline is None else deadline - time.monotonic()


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, None),
        ({"X-Request-Timeout": "30"}, 30),
        ({"X-Request-Timeout": "2.5"}, 2.5),
        ({"X-Stainless-Read-Timeout": "600.0"}, 600),  # the openai SDK's own timeout
        ({"X-Request-Timeout": "20", "X-Stainless-Read-Timeout": "600"}, 20),  # ours wins
        # The SDK's header is not the client's own words: nonsense is ignored.
        ({"X-Stainless-Read-Timeout": "soon"}, None),
        ({"X-Stainless-Read-Timeout": "-1"}, None),
    ],
)
def test_the_deadline_comes_from_x_request_timeout_or_the_openai_sdk(headers, seconds):
    left = left_s(headers)
    if seconds is None:
        assert left is None
    else:
        assert seconds - 1 < left <= seconds


@pytest.mark.parametrize("value", ["0", "-5", "soon", "nan", "inf", ""])
def test_a_timeout_that_is_not_seconds_above_zero_is_refused_with_what_to_send(value):
    with pytest.raises(InvalidTimeoutError, match="number of seconds above 0, such as 30") as refused:
        left_s({"X-Request-Timeout": value})
    assert refused.value.status_code == 422 and refused.value.code == "invalid_timeout"
