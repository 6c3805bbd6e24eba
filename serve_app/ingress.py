"""The HTTP face of the graph: a FastAPI app under `@serve.ingress`.

`build_http_app` is plain FastAPI (routers, error mapping, body limit); the
Ingress deployment only wires it to the handles it was bound with.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve
from ray.exceptions import RayTaskError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve_app import errors
from serve_app.health import router as health_router
from serve_app.request_ids import request_id
from serve_app.settings import Settings
from serve_app.tts.router import router as tts_router
from serve_app.tts.serving import TTSServing
from serve_app.version import version_info

logger = logging.getLogger("ray.serve")

_HTTP_STATUS_ERRORS: dict[int, type[errors.VoiceGraphError]] = {
    404: errors.NotFoundError,
    405: errors.MethodNotAllowedError,
    413: errors.PayloadTooLargeError,
}


def json_error(request: Request, status_code: int, code: str, message: str) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "request_id": request_id(request)}}
    return JSONResponse(body, status_code=status_code)


def error_response(request: Request, error: errors.VoiceGraphError) -> JSONResponse:
    return json_error(request, error.status_code, error.code, error.message)


def _field_path(location: tuple) -> str:
    return ".".join(str(part) for part in location if part != "body") or "body"


def _validation_error(request: Request, exc: RequestValidationError) -> errors.VoiceGraphError:
    problems = exc.errors()
    content_type = request.headers.get("content-type", "")
    for problem in problems:
        if problem.get("type") == "json_invalid":
            detail = (problem.get("ctx") or {}).get("error", "invalid JSON")
            return errors.MalformedJSONError(f"request body is not valid JSON: {detail}")
    if request.method in ("POST", "PUT", "PATCH") and "json" not in content_type.lower():
        return errors.UnsupportedMediaTypeError(
            f"Content-Type {content_type or '(none)'!r} is not accepted; send a JSON body "
            "with Content-Type: application/json"
        )
    messages = [f"{_field_path(problem['loc'])}: {problem['msg']}" for problem in problems]
    return errors.InvalidRequestError("; ".join(messages))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.VoiceGraphError)
    async def _known(request: Request, exc: errors.VoiceGraphError):
        return error_response(request, exc)

    @app.exception_handler(RayTaskError)
    async def _remote(request: Request, exc: RayTaskError):
        # A deployment raised: Ray wraps the original, which carries the status.
        cause = exc.cause
        if isinstance(cause, errors.VoiceGraphError):
            return error_response(request, cause)
        return await _unexpected(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return error_response(request, _validation_error(request, exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        error_class = _HTTP_STATUS_ERRORS.get(exc.status_code)
        if error_class is None:
            return json_error(request, exc.status_code, "http_error", str(exc.detail))
        if exc.status_code == 404:
            error = error_class(f"no such route: {request.method} {request.url.path}")
        elif exc.status_code == 405:
            error = error_class(f"{request.method} is not allowed on {request.url.path}")
        else:
            error = error_class(str(exc.detail))
        return error_response(request, error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        logger.exception("unhandled error in request %s", request_id(request))
        return error_response(
            request,
            errors.VoiceGraphError(
                f"internal error; quote request id {request_id(request)} when reporting it"
            ),
        )


class BodySizeLimit:
    """Refuse request bodies over `max_bytes` while they arrive, not after."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            request = Request(scope)
            response = error_response(request, self._too_large())
            return await response(scope, receive, send)
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise StarletteHTTPException(413, self._too_large().message)
            return message

        return await self.app(scope, counting_receive, send)

    def _too_large(self) -> errors.PayloadTooLargeError:
        return errors.PayloadTooLargeError(
            f"request body is larger than {self.max_bytes} bytes; send less text per request"
        )


def build_http_app(tts: TTSServing) -> FastAPI:
    app = FastAPI(
        title="voicegraph",
        version=version_info()["app_version"],
        description="Text-to-speech as a Ray Serve deployment graph.",
        docs_url="/docs",
    )
    app.state.tts = tts
    _install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=tts.settings.max_request_bytes)
    app.include_router(tts_router)
    app.include_router(health_router)
    return app


@serve.deployment(name="Ingress")
@serve.ingress()
class Ingress:
    async def __init__(self, settings: Settings, chunker, synthesizer, stitcher, storage):
        self._tts = TTSServing(settings, chunker, synthesizer, stitcher, storage)
        # Ask the engine what it offers now, not on the first user request.
        await self._tts.engine_info()

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_http_app(self._tts)
