"""The Ingress deployment: the FastAPI app of serve_app.http_app under
`@serve.ingress`, wired to the handles it was bound with."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from ray import serve

from deployments.handles import AsyncCalls
from deployments.metrics import install_serve_metrics
from serve_app.access import AccessControl
from serve_app.http_app import build_http_app
from serve_app.jobs.serving import JobsServing
from serve_app.tts.serving import TTSServing
from serve_app.voices.serving import VoicesServing
from voicegraph.core.settings import Settings
from voicegraph.text.chunking import split_sentences

logger = logging.getLogger("ray.serve")


@serve.deployment(name="Ingress")
@serve.ingress()
class Ingress:
    async def __init__(
        self, settings: Settings, chunker, synthesizers, stitcher, storage, cloner, profiles, rate_limiter=None
    ):
        install_serve_metrics()
        # A request's path goes over gRPC, past Ray's object store: text to
        # the chunker, each chunk to a synthesizer and its audio back (which
        # only this replica receives: it carries gRPC's message limit,
        # deployments/serve_env.py), a voice, a rate check. +28% short
        # requests/s here. What carries whole files or uploads (the Stitcher,
        # the StorageActor, the cloner, saving a voice) stays by reference.
        chunker = chunker.options(_by_reference=False)
        synthesizers = {engine: handle.options(_by_reference=False) for engine, handle in synthesizers.items()}
        if rate_limiter is not None:
            rate_limiter = rate_limiter.options(_by_reference=False)
        voice_lookups = profiles.options(_by_reference=False)
        self._tts = TTSServing(settings, chunker, synthesizers, stitcher, storage, voice_lookups)
        self._voices = VoicesServing(self._tts, cloner, profiles)
        self._jobs = JobsServing(self._tts, storage, str(serve.get_replica_context().replica_id))
        if rate_limiter is None:
            self._access = None
            logger.warning(
                "API KEYS ARE OFF (auth.enabled: false): anyone who can reach this service can use it, "
                "without limits. Turn them on before exposing it (docs/api/native.md: API keys)."
            )
        else:
            self._access = AccessControl(settings.auth, AsyncCalls(rate_limiter))
        # Ask the engines what they offer now, and load the sentence splitter
        # the text's head is cut with, not on the first user request.
        await self._tts.catalog()
        split_sentences("Warm up. Ready.")
        self._jobs.runner.start()

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_http_app(self._tts, self._voices, self._jobs, self._access)

    async def __del__(self):
        # Serve calls this after the replica's requests have drained
        # (graceful_shutdown_timeout_s); jobs run outside requests.
        await self._jobs.runner.stop()
