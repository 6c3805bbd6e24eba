"""What the OpenAPI schema says about error answers: their body and when each
status comes, so generated clients and fuzzers see every 4xx a route gives."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str


class ErrorResponse(BaseModel):
    """The body of every error answer of the native and serverless APIs."""

    error: ErrorDetail


_WHEN = {
    400: "The body is not valid JSON.",
    401: "No API key, or one that is wrong or revoked.",
    404: "Nothing with this id.",
    409: "The request conflicts with what exists (a voice of that name, a built-in voice).",
    413: "The body is larger than the service accepts.",
    415: "The body is not in the content type this route reads.",
    422: "The request is well-formed but cannot be done as asked; the message says what to change.",
    429: "The API key's rate limit is reached; retry after Retry-After seconds.",
    503: "The service cannot finish now (an engine, a replica or storage failed); retry later.",
    504: "The request took longer than the service's limit.",
}

# Statuses by what a route does.
BODY = (400, 413, 415, 422)
LOOKUP = (404, 422)
GRAPH = (503, 504)
KEYED = (401, 429)


_HEADERS = {
    401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}, "required": True}},
    429: {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}, "required": True}},
}


def error_responses(*statuses: int, model: type[BaseModel] = ErrorResponse) -> dict[int | str, dict[str, Any]]:
    responses = {}
    for status in sorted(set(statuses)):
        responses[status] = {"model": model, "description": _WHEN[status]}
        if status in _HEADERS:
            responses[status]["headers"] = _HEADERS[status]
    return responses
