"""The body-size middleware: one limit for JSON requests, another for uploads."""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve_app.errors import error_response, route_path
from voicegraph.core.errors import PayloadTooLargeError

# Multipart framing around an upload: boundaries, part headers, small fields.
_FORM_OVERHEAD_BYTES = 64 * 1024


class BodySizeLimit:
    """Refuse request bodies over the limit while they arrive, not after.

    JSON requests get `max_bytes`; reference uploads (POST /v1/voices) get
    `max_upload_bytes`, the limit of the audio itself, plus form framing.
    """

    def __init__(self, app, max_bytes: int, max_upload_bytes: int):
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes

    def _limit(self, scope) -> tuple[int, str]:
        path = route_path(scope)
        if scope["method"] == "POST" and path.rstrip("/") == "/v1/voices":
            return (
                self.max_upload_bytes + _FORM_OVERHEAD_BYTES,
                f"the upload is larger than {self.max_upload_bytes} bytes; "
                "send a shorter recording (3 to 30 s of speech is enough)",
            )
        return self.max_bytes, f"request body is larger than {self.max_bytes} bytes; send less text per request"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, message = self._limit(scope)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            response = error_response(Request(scope), PayloadTooLargeError(message))
            return await response(scope, receive, send)
        received = 0

        async def counting_receive():
            nonlocal received
            message_in = await receive()
            if message_in["type"] == "http.request":
                received += len(message_in.get("body", b""))
                if received > limit:
                    raise StarletteHTTPException(413, message)
            return message_in

        return await self.app(scope, counting_receive, send)
