"""Every error answered in one JSON shape, `{"error": {"code", "message",
"request_id"}}`, and OpenAI's shape on OpenAI's paths: exceptions of the
hierarchy in voicegraph.core.errors, of Ray and Serve, and of FastAPI."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray.exceptions import RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve_app.openai_api.serving import OPENAI_PATHS, openai_error_response
from serve_app.request_ids import request_id
from voicegraph.core import errors

logger = logging.getLogger("ray.serve")

_HTTP_STATUS_ERRORS: dict[int, type[errors.VoiceGraphError]] = {
    400: errors.MalformedBodyError,
    404: errors.NotFoundError,
    405: errors.MethodNotAllowedError,
    413: errors.PayloadTooLargeError,
}


def json_error(request: Request, status_code: int, code: str, message: str) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "request_id": request_id(request)}}
    return JSONResponse(body, status_code=status_code)


def error_response(request: Request, error: errors.VoiceGraphError) -> JSONResponse:
    if route_path(request.scope).startswith(OPENAI_PATHS):
        # OpenAI's clients read their own error shape and statuses.
        return openai_error_response(error)
    response = json_error(request, error.status_code, error.code, error.message)
    response.headers.update(error.headers())
    return response


def route_path(scope) -> str:
    """The path as the routers see it, without the application's route prefix."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def _field_path(location: tuple) -> str:
    return ".".join(str(part) for part in location if part != "body") or "body"


def _expected_body(request: Request) -> str | None:
    """The content type the route reads its body as; None for a route without one."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None or not dependant.body_params:
        return None
    if any(isinstance(param.field_info, params.Form) for param in dependant.body_params):
        return "multipart/form-data"
    return "application/json"


def _validation_error(request: Request, exc: RequestValidationError) -> errors.VoiceGraphError:
    problems = exc.errors()
    content_type = request.headers.get("content-type", "")
    for problem in problems:
        if problem.get("type") == "json_invalid":
            detail = (problem.get("ctx") or {}).get("error", "invalid JSON")
            return errors.MalformedJSONError(f"request body is not valid JSON: {detail}")
    expected = _expected_body(request)
    if expected is not None and expected.split("/")[1] not in content_type.lower():
        return errors.UnsupportedMediaTypeError(
            f"Content-Type {content_type or '(none)'!r} is not accepted here; "
            f"send the body as {expected}"
        )
    messages = [f"{_field_path(problem['loc'])}: {problem['msg']}" for problem in problems]
    return errors.InvalidRequestError("; ".join(messages))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.VoiceGraphError)
    async def _known(request: Request, exc: errors.VoiceGraphError):
        return error_response(request, exc)

    @app.exception_handler(RayTaskError)
    async def _remote(request: Request, exc: RayTaskError):
        # A deployment raised: Ray wraps the original, which carries the status.
        cause = exc.cause
        if isinstance(cause, errors.VoiceGraphError):
            return error_response(request, cause)
        if isinstance(cause, BackPressureError):
            return await _overloaded(request, cause)
        return await _unexpected(request, exc)

    @app.exception_handler(BackPressureError)
    async def _overloaded(request: Request, exc: BackPressureError):
        # A deployment's queue (max_queued_requests) is full: say so at once.
        return error_response(request, request.app.state.tts.overloaded(exc.message))

    @app.exception_handler(RayActorError)
    async def _replica_gone(request: Request, exc: RayActorError):
        # Replicas kept dying under this request even after resends: an outage, not a bug.
        logger.warning("request %s failed: replica died: %s", request_id(request), exc)
        return error_response(
            request, errors.ReplicaFaultError("a replica serving this request died; retry it shortly")
        )

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
        elif exc.status_code == 400:
            error = error_class(
                f"the request body could not be read ({exc.detail}); send JSON encoded as UTF-8, "
                "or multipart/form-data where a file is uploaded"
            )
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
