"""Requests by route, method and status, and their latency, for Prometheus."""

from __future__ import annotations

import time

from voicegraph.core import metrics

# Routes are labelled by template (/v1/tts/jobs/{job_id}), never by raw path:
# one series per route, not per id. Paths no route matched share one label.
UNMATCHED = "unmatched"


class RequestMetrics:
    """Outermost ASGI middleware: sees every answer, error answers included."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500  # what the client sees when the app fails before answering

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # The router leaves the matched route in the scope.
            route = getattr(scope.get("route"), "path", UNMATCHED)
            metrics.count("voicegraph_http_requests", route=route, method=scope["method"], status=status)
            metrics.observe("voicegraph_http_request_latency_s", time.perf_counter() - started, route=route)
