"""A real local Ray with Serve, and what tests read from it."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.ports import free_port
from voicegraph.core.settings import Settings

# For graphs that are not testing admission: a busy test machine slows their
# requests down rather than having them refused as overload.
PATIENT_ADMISSION = {"max_queue_wait_s": 60}


@dataclass(frozen=True)
class LocalServe:
    url: str  # Serve's HTTP proxy
    metrics_url: str  # Ray's Prometheus endpoint, for every application


@contextmanager
def local_serve(num_cpus: int) -> Iterator[LocalServe]:
    """A real local Ray with Serve's HTTP proxy and Ray's metrics endpoint on free loopback ports."""
    import ray
    from ray import serve

    from deployments.serve_env import with_serve_env

    port, metrics_port = free_port(), free_port()
    # What production runs under; Ray's processes inherit it from here.
    os.environ.update(with_serve_env(os.environ))
    # Handles report their load to the autoscaler every second rather than
    # every ten, so scaling happens within a test (test_operations.py).
    os.environ.setdefault("RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S", "1")
    os.environ.setdefault("RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S", "1")
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        namespace="serve",
        log_to_driver=False,
        _metrics_export_port=metrics_port,
        # Replicas report metrics every second rather than every ten, so a
        # test sees its requests counted without a long wait.
        _system_config={"metrics_report_interval_ms": 1000},
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        yield LocalServe(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        serve.shutdown()
        ray.shutdown()


@dataclass(frozen=True)
class Service:
    """One application deployed on the local Serve, as the fixtures hand it to tests."""

    url: str
    storage_root: Path
    settings: Settings
    # Where Ray's metrics agent serves Prometheus text, for every application.
    metrics_url: str = ""


def replicas(deployment: str, app: str = "voicegraph") -> list[str]:
    """The actor names of the running replicas of one deployment."""
    import ray

    return [
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if f"SERVE_REPLICA::{app}#{deployment}#" in actor["name"]
    ]


def synthesizer_replica_infos(app: str, engine: str, replicas: int) -> dict[str, dict]:
    """Each replica's replica_info (which engine, what it holds and has
    done) by replica id: asked until all have answered, as calls are spread at random."""
    from ray import serve

    handle = serve.get_deployment_handle(f"Synthesizer-{engine}", app)
    seen: dict[str, dict] = {}
    for _ in range(100):
        info = handle.replica_info.remote().result()
        seen[info["replica_id"]] = info
        if len(seen) == replicas:
            return seen
    raise AssertionError(f"only {len(seen)} of {replicas} {engine} replicas of {app} answered")
