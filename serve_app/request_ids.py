"""The id that ties a response, its error body and Serve's logs together."""

from __future__ import annotations

import uuid

from starlette.requests import Request

# Serve's proxy puts its request id in this header (taking the client's own
# X-Request-ID when one is sent) and echoes it in the response.
_HEADER = "x-request-id"


def request_id(request: Request) -> str:
    if not hasattr(request.state, "request_id"):
        request.state.request_id = request.headers.get(_HEADER) or uuid.uuid4().hex
    return request.state.request_id
