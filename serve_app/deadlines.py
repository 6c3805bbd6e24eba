"""A client's deadline: how long it will wait for its answer.

Sent as `X-Request-Timeout` (seconds); the OpenAI SDKs send their read
timeout as `X-Stainless-Read-Timeout`, so their clients need not know ours.
The service's own request_timeout_s bounds it either way.
"""

from __future__ import annotations

import math
import time

from fastapi import Header, Request

from voicegraph.core.errors import InvalidTimeoutError

# Sent by the openai Python and Node SDKs on every request.
OPENAI_SDK_TIMEOUT = "x-stainless-read-timeout"


def client_deadline(
    request: Request,
    x_request_timeout: str | None = Header(
        None,
        description="Seconds this client will wait for its answer (for a stream, for its first audio). "
        "Work that cannot be done in time is refused at once (503 with Retry-After, or 422 "
        "deadline_too_short when no wait would help) and work still under way when it passes is stopped.",
    ),
) -> float | None:
    """The deadline on the monotonic clock, or None when the client gave none."""
    arrived = time.monotonic()
    if x_request_timeout is not None:
        seconds = _seconds(x_request_timeout)
        if seconds is None:
            raise InvalidTimeoutError(
                f"X-Request-Timeout must be a number of seconds above 0, such as 30; got {x_request_timeout[:40]!r}"
            )
        return arrived + seconds
    # Not the client's own words: a value that makes no sense is ignored.
    seconds = _seconds(request.headers.get(OPENAI_SDK_TIMEOUT, ""))
    return None if seconds is None else arrived + seconds


def _seconds(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None
