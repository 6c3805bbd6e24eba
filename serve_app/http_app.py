"""The FastAPI app the Ingress serves: routers, error mapping, body limit,
API keys. Plain FastAPI over the services it is given, so it runs without Ray."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from serve_app.access import AccessControl, RateLimitHeaders, authorize
from serve_app.body_limit import BodySizeLimit
from serve_app.error_schemas import KEYED, ErrorResponse, error_responses
from serve_app.errors import install_error_handlers
from serve_app.health import router as health_router
from serve_app.jobs.router import router as jobs_router
from serve_app.jobs.serving import JobsServing
from serve_app.openai_api.protocol import OpenAIErrorResponse
from serve_app.openai_api.router import router as openai_router
from serve_app.request_metrics import RequestMetrics
from serve_app.serverless.router import endpoint_router as serverless_endpoint_router
from serve_app.serverless.router import router as serverless_router
from serve_app.serverless.serving import ServerlessServing
from serve_app.tts.router import router as tts_router
from serve_app.tts.serving import TTSServing
from serve_app.ui.router import router as ui_router
from serve_app.version import version_info
from serve_app.voices.router import router as voices_router
from serve_app.voices.serving import VoicesServing


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
    app.state.serverless = ServerlessServing(jobs)
    app.state.access = access
    install_error_handlers(app)
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
        (serverless_router, ErrorResponse),
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
