"""API keys and rate limits at the HTTP edge.

`authorize` is a dependency of every API route (not /health): it identifies
the key and counts the request. Routes that take text also call
`charge_characters` with its length. Both ask the one RateLimiter deployment,
so limits hold across ingress replicas. `RateLimitHeaders` reports the key's
quota on every answer, refusals included.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from ray.exceptions import RayError

from voicegraph.access.keys import KeyRing
from voicegraph.access.rate_limit import Admission
from voicegraph.core.errors import RateLimitedError, TextTooLongError
from voicegraph.core.settings import ApiKey, AuthSettings

logger = logging.getLogger("ray.serve")

class AccessControl:
    """The keys, and a client of the RateLimiter (anything with `async admit`)."""

    def __init__(self, auth: AuthSettings, limiter: Any):
        self.keys = KeyRing(auth.keys)
        self._limiter = limiter
        self._timeout_s = auth.limiter_timeout_s

    async def admit(self, request: Request, key: ApiKey, requests: int, characters: int) -> None:
        try:
            admission: Admission = await asyncio.wait_for(
                self._limiter.admit(key, requests, characters), self._timeout_s
            )
        except (asyncio.TimeoutError, RayError) as exc:
            logger.warning("rate limiter unavailable (%s); admitting key %s unchecked", type(exc).__name__, key.name)
            return
        request.state.rate_limit = admission
        if math.isinf(admission.retry_after_s):
            raise TextTooLongError(
                f"{characters} characters in one request is more than key {key.name!r} may send in a minute "
                f"({admission.characters.limit}); send the text in parts"
            )
        if not admission.allowed:
            wait = admission.retry_after_s
            raise RateLimitedError(
                f"rate limit of key {key.name!r} reached ({admission.exceeded}); retry in {wait:.1f} s",
                wait,
            )


# Declared as security schemes, so /docs has an Authorize button and
# /openapi.json tells clients how to send the key.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key")


async def authorize(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    api_key: str | None = Depends(_api_key_header),
) -> None:
    access: AccessControl = request.app.state.access
    key = access.keys.identify(bearer.credentials if bearer else api_key)
    request.state.api_key = key
    await access.admit(request, key, requests=1, characters=0)


async def charge_characters(request: Request, characters: int) -> None:
    """Count a request's text against its key's characters-per-minute limit."""
    key: ApiKey | None = getattr(request.state, "api_key", None)
    if key is not None:
        await request.app.state.access.admit(request, key, requests=0, characters=characters)


def _quota_headers(admission: Admission) -> list[tuple[bytes, bytes]]:
    headers = []
    for name, quota in (("requests", admission.requests), ("characters", admission.characters)):
        headers += [
            (f"x-ratelimit-limit-{name}".encode(), str(quota.limit).encode()),
            (f"x-ratelimit-remaining-{name}".encode(), str(quota.remaining).encode()),
            (f"x-ratelimit-reset-{name}".encode(), f"{quota.reset_s:.3f}".encode()),
        ]
    return headers


class RateLimitHeaders:
    """X-RateLimit-{Limit,Remaining,Reset}-{Requests,Characters} on every
    answer to a keyed request (the names OpenAI's API uses; Reset in seconds)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_quota(message):
            admission = scope.get("state", {}).get("rate_limit")
            if message["type"] == "http.response.start" and admission is not None:
                message = {**message, "headers": [*message.get("headers", []), *_quota_headers(admission)]}
            await send(message)

        return await self.app(scope, receive, send_with_quota)
