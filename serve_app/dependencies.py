"""FastAPI dependencies: the services `build_http_app` put on the app, for the routers."""

from __future__ import annotations

from fastapi import Request

from serve_app.jobs.serving import JobsServing
from serve_app.serverless.serving import ServerlessServing
from serve_app.tts.serving import TTSServing
from serve_app.voices.serving import VoicesServing


def get_tts(request: Request) -> TTSServing:
    return request.app.state.tts


def get_voices(request: Request) -> VoicesServing:
    return request.app.state.voices


def get_jobs(request: Request) -> JobsServing:
    return request.app.state.jobs


def get_serverless(request: Request) -> ServerlessServing:
    return request.app.state.serverless
