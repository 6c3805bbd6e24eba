"""The HTTP face of the graph: a FastAPI app under `@serve.ingress`.

`build_http_app` is plain FastAPI (routers, error mapping, body limit); the
Ingress deployment only wires it to the handles it was bound with.
"""

from __future__ import annotations

import logging

from fastapi import Depends, FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve
from ray.exceptions import RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException

from deployments.handles import AsyncCalls
from deployments.metrics import install_serve_metrics
from serve_app.access import AccessControl, RateLimitHeaders, authorize
from serve_app.error_schemas import KEYED, ErrorResponse, error_responses
from serve_app.health import router as health_router
from serve_app.jobs.router import router as jobs_router
from serve_app.jobs.serving import JobsServing
from serve_app.migration.router import endpoint_router as serverless_endpoint_router
from serve_app.migration.router import router as migration_router
from serve_app.migration.serving import MigrationServing
from serve_app.openai_api.protocol import OpenAIErrorResponse
from serve_app.openai_api.router import router as openai_router
from serve_app.openai_api.serving import OPENAI_PATHS, openai_error_response
from serve_app.request_ids import request_id
from serve_app.request_metrics import RequestMetrics
from serve_app.tts.router import router as tts_router
from serve_app.tts.serving import TTSServing
from serve_app.ui.router import router as ui_router
from serve_app.version import version_info
from serve_app.voices.router import router as voices_router
from serve_app.voices.serving import VoicesServing
from voicegraph.core import errors
from voicegraph.core.settings import Settings
from voicegraph.text.chunking import split_sentences

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
    if _route_path(request.scope).startswith(OPENAI_PATHS):
        # OpenAI's clients read their own error shape and statuses.
        return openai_error_response(error)
    response = json_error(request, error.status_code, error.code, error.message)
    response.headers.update(error.headers())
    return response


def _route_path(scope) -> str:
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
        path = _route_path(scope)
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
            response = error_response(Request(scope), errors.PayloadTooLargeError(message))
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


def build_http_app(
    tts: TTSServing, voices: VoicesServing, jobs: JobsServing, access: AccessControl | None = None
) -> FastAPI:
    """`access`: API keys and rate limits; None serves everyone (auth.enabled false)."""
    public_docs = access is None or tts.settings.auth.public_docs
    app = FastAPI(
        title="voicegraph",
        version=version_info()["app_version"],
        description="Text-to-speech as a Ray Serve deployment graph.",
        docs_url="/docs" if public_docs else None,
        openapi_url="/openapi.json" if public_docs else None,
    )
    app.state.tts = tts
    app.state.voices = voices
    app.state.jobs = jobs
    app.state.migration = MigrationServing(jobs)
    app.state.access = access
    _install_error_handlers(app)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=tts.settings.max_request_bytes,
        max_upload_bytes=tts.settings.voices.max_upload_bytes,
    )
    keyed = [Depends(authorize)] if access is not None else []
    if access is not None:
        app.add_middleware(RateLimitHeaders)
    for router, error_model in (
        (tts_router, ErrorResponse),
        (jobs_router, ErrorResponse),
        (openai_router, OpenAIErrorResponse),
        (migration_router, ErrorResponse),
        (serverless_endpoint_router, ErrorResponse),
        (voices_router, ErrorResponse),
    ):
        refusals = error_responses(*KEYED, model=error_model) if keyed else None
        app.include_router(router, dependencies=keyed, responses=refusals)
    # Liveness stays open: load balancers and Kubernetes probes carry no key.
    app.include_router(health_router)
    if public_docs:
        # A browser cannot send a key to load a page: the try-it page is public
        # exactly when /docs is, and asks for a key itself before it calls the API.
        app.include_router(ui_router)
    else:

        @app.get("/openapi.json", include_in_schema=False, dependencies=keyed)
        async def openapi_with_key() -> dict:
            return app.openapi()

    # Last added, so outermost: it sees the answers the others make too.
    app.add_middleware(RequestMetrics)
    return app


@serve.deployment(name="Ingress")
@serve.ingress()
class Ingress:
    async def __init__(
        self, settings: Settings, chunker, synthesizer, stitcher, storage, cloner, profiles, rate_limiter=None
    ):
        install_serve_metrics()
        # A request's path goes over gRPC, past Ray's object store: text to
        # the chunker, each chunk to a synthesizer and its audio back (which
        # only this replica receives: it carries gRPC's message limit,
        # deployments/serve_env.py), a voice, a rate check. +28% short
        # requests/s here. What carries whole files or uploads (the Stitcher,
        # the StorageActor, the cloner, saving a voice) stays by reference.
        chunker, synthesizer = (handle.options(_by_reference=False) for handle in (chunker, synthesizer))
        if rate_limiter is not None:
            rate_limiter = rate_limiter.options(_by_reference=False)
        voice_lookups = profiles.options(_by_reference=False)
        self._tts = TTSServing(settings, chunker, synthesizer, stitcher, storage, voice_lookups)
        self._voices = VoicesServing(self._tts, cloner, profiles)
        self._jobs = JobsServing(self._tts, storage, str(serve.get_replica_context().replica_id))
        if rate_limiter is None:
            self._access = None
            logger.warning(
                "API KEYS ARE OFF (auth.enabled: false): anyone who can reach this service can use it, "
                "without limits. Turn them on before exposing it (README: API keys)."
            )
        else:
            self._access = AccessControl(settings.auth, AsyncCalls(rate_limiter))
        # Ask the engine what it offers now, and load the sentence splitter
        # the text's head is cut with, not on the first user request.
        await self._tts.engine_info()
        split_sentences("Warm up. Ready.")
        self._jobs.start()

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_http_app(self._tts, self._voices, self._jobs, self._access)

    async def __del__(self):
        # Serve calls this after the replica's requests have drained
        # (graceful_shutdown_timeout_s); jobs run outside requests.
        await self._jobs.stop()
