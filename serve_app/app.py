"""The application builder: `import_path: serve_app.app:build_app` in serve_config.yaml."""

from __future__ import annotations

from typing import Any

import ray
from ray.serve import Application

from deployments.rate_limiter import RateLimiter
from deployments.serve_env import INGRESS_ENV
from deployments.stitcher import Stitcher
from deployments.storage_actor import StorageActor
from deployments.synthesizer import Synthesizer, deployment_name
from deployments.text_chunker import TextChunker
from deployments.voice_cloner import VoiceCloner
from deployments.voice_profiles import VoiceProfiles
from serve_app.ingress import Ingress
from voicegraph.core.settings import ReplicaSettings, Settings, SynthesizerSettings
from voicegraph.jobs.database import open_database


def synthesizer_gpus(synth: SynthesizerSettings) -> float:
    """GPUs per Synthesizer replica; `auto` asks for a share only where GPUs exist.

    `auto` reads the cluster at deploy time, which misleads on an autoscaling
    cluster whose GPU workers start at zero: production configs set a number.
    """
    if synth.gpus_per_replica != "auto":
        return float(synth.gpus_per_replica)
    has_gpus = ray.is_initialized() and ray.cluster_resources().get("GPU", 0) > 0
    return synth.auto_gpu_fraction if has_gpus else 0.0


def _common(replicas: ReplicaSettings | SynthesizerSettings, settings: Settings) -> dict[str, Any]:
    """What every deployment sets alike: queues, shutdown, logs."""
    return {
        "max_ongoing_requests": replicas.max_ongoing_requests,
        "max_queued_requests": replicas.max_queued_requests,
        "backpressure_config": {"status_code": 503, "retry_after_s": settings.overload_retry_after_s},
        "graceful_shutdown_timeout_s": replicas.graceful_shutdown_timeout_s,
        "graceful_shutdown_wait_loop_s": replicas.graceful_shutdown_wait_loop_s,
        "health_check_period_s": replicas.health_check_period_s,
        "health_check_timeout_s": replicas.health_check_timeout_s,
        "logging_config": {"encoding": settings.log_encoding},
        "request_router_config": {"max_backoff_s": settings.router_max_backoff_s},
    }


def _fixed(replicas: ReplicaSettings, settings: Settings) -> dict[str, Any]:
    return {
        **_common(replicas, settings),
        "num_replicas": replicas.num_replicas,
        "ray_actor_options": {"num_cpus": replicas.num_cpus, "resources": replicas.resources},
    }


def _autoscaled(synth: SynthesizerSettings, settings: Settings) -> dict[str, Any]:
    optional = {
        name: getattr(synth, name)
        for name in ("look_back_period_s", "upscaling_factor", "downscaling_factor")
        if getattr(synth, name) is not None
    }
    return {
        **_common(synth, settings),
        "autoscaling_config": {
            "min_replicas": synth.min_replicas,
            "max_replicas": synth.max_replicas,
            "initial_replicas": synth.initial_replicas,
            "target_ongoing_requests": synth.target_ongoing_requests,
            "upscale_delay_s": synth.upscale_delay_s,
            "downscale_delay_s": synth.downscale_delay_s,
            **optional,
        },
        "ray_actor_options": {"num_cpus": synth.num_cpus, "num_gpus": synthesizer_gpus(synth)},
    }


def settings_for(args: dict[str, Any] | Settings | None) -> Settings:
    """The settings `args` give over the `VG_*` environment, checked against
    what must be reachable at start: a PostgreSQL job database is opened
    (and migrated) here, so a wrong URL or password stops the deploy with one
    ConfigError naming the setting rather than failing every replica."""
    settings = args if isinstance(args, Settings) else Settings(**(args or {}))
    if (url := settings.jobs.database_url) is not None:
        open_database(
            url.get_secret_value(), connect_timeout_s=settings.jobs.database_connect_timeout_s, pool_size=1
        ).close()
    return settings


def build_app(args: dict[str, Any] | Settings | None = None) -> Application:
    """Bind the graph. `args` override `VG_*` environment settings field by field."""
    settings = settings_for(args)
    # Replicas may run in another working directory: pin the storage root now.
    settings = settings.model_copy(update={"storage_root": settings.storage_root.resolve()})

    chunker = TextChunker.options(**_fixed(settings.chunker, settings)).bind()
    # Each engine its own deployment: its own resources (Piper on CPUs, XTTS
    # on GPU shares), replica counts and autoscaling.
    synthesizers = {
        engine: Synthesizer.options(
            name=deployment_name(engine), **_autoscaled(settings.synthesizer_for(engine), settings)
        ).bind(settings, engine)
        for engine in settings.engines
    }
    stitcher = Stitcher.options(**_fixed(settings.stitcher, settings)).bind(settings)
    storage = StorageActor.options(**_fixed(settings.storage, settings)).bind(settings)
    cloner = VoiceCloner.options(**_fixed(settings.cloner, settings)).bind(settings, synthesizers)
    profiles = VoiceProfiles.options(**_fixed(settings.profiles, settings)).bind(settings, storage, cloner)
    rate_limiter = (
        RateLimiter.options(logging_config={"encoding": settings.log_encoding}).bind(settings)
        if settings.auth.enabled
        else None
    )
    ingress = _fixed(settings.ingress, settings)
    ingress["ray_actor_options"]["runtime_env"] = {"env_vars": INGRESS_ENV}
    return Ingress.options(**ingress).bind(
        settings, chunker, synthesizers, stitcher, storage, cloner, profiles, rate_limiter
    )
