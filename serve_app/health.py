"""GET /health: liveness plus what is running."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from serve_app.dependencies import get_jobs, get_tts
from serve_app.jobs.serving import JobsServing
from serve_app.tts.serving import TTSServing
from serve_app.version import version_info

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(tts: TTSServing = Depends(get_tts), jobs: JobsServing = Depends(get_jobs)) -> dict:
    catalog = await tts.catalog()
    info = catalog.default
    return {
        "status": "ok",
        **version_info(tts.settings.git_sha, tts.settings.build_time),
        # The default engine's, for clients written when there was one engine.
        "engine": info.engine,
        "model": info.model,
        "sample_rate": info.sample_rate,
        "default_voice": tts.public_voice_id(info, tts.default_voice(info)),
        # Whether POST /v1/voices can clone a recording with some engine here.
        "can_clone": any(engine.can_clone for engine in catalog.infos()),
        "engines": [
            {
                "engine": engine.engine,
                "model": engine.model,
                "sample_rate": engine.sample_rate,
                "default_voice": tts.public_voice_id(engine, tts.default_voice(engine)),
                "voices": len(engine.voices),
                "can_clone": engine.can_clone,
            }
            for engine in catalog.infos()
        ],
        # Whether every route but this one needs an API key.
        "api_keys": tts.settings.auth.enabled,
        # What a request may ask for, so a form can say so before the service refuses.
        "limits": {
            "max_text_chars": tts.settings.max_text_chars,
            "min_speed": tts.settings.min_speed,
            "max_speed": tts.settings.max_speed,
        },
        # This ingress replica's work under way.
        "load": {
            "replica": jobs.runner.replica_name,
            "chunks_in_flight": tts.chunks_in_flight,
            "chunks_done": tts.chunks_done,
            "open_streams": tts.open_streams,
            # Seconds the work admitted here has left on each engine, as
            # admission estimates it (null until a chunk has come back).
            "queue_wait_s": {engine: backlog.wait_s() for engine, backlog in tts.backlogs.items()},
            "chunks_cancelled": dict(tts.chunks_cancelled),
        },
        # This ingress replica's counts: each replica counts its own requests.
        "response_cache": {
            "enabled": tts.settings.response_cache.enabled,
            "hits": tts.cache_hits,
            "misses": tts.cache_misses,
        },
    }
