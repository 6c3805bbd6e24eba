"""One real local Ray and the real Serve graph for the whole test session."""

from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from serve_app.settings import Settings
from tests.conftest import free_port


@dataclass(frozen=True)
class Service:
    url: str
    storage_root: Path
    settings: Settings


@pytest.fixture(scope="session")
def service(tmp_path_factory) -> Service:
    import ray
    from ray import serve

    from serve_app.app import build_app

    settings = Settings(
        storage_root=tmp_path_factory.mktemp("storage"),
        # Two replicas from the start, so every long text is fanned out across both.
        synthesizer={"min_replicas": 2, "max_replicas": 2},
    )
    port = free_port()
    # Logical CPUs: the graph's fractional requests fit even on a 2-core machine.
    ray.init(address="local", num_cpus=4, include_dashboard=False, namespace="serve", log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(settings), name="voicegraph", route_prefix="/")
        yield Service(f"http://127.0.0.1:{port}", settings.storage_root, settings)
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture()
def client(service):
    with httpx.Client(base_url=service.url, timeout=120) as http:
        yield http


@pytest.fixture(scope="session")
def xtts_service(service, tiny_xtts_dir, reference_clip, tmp_path_factory) -> Service:
    """The same graph with engine xtts on the tiny checkpoint, beside the eSpeak one."""
    from ray import serve

    from serve_app.app import build_app
    from tests.conftest import tiny_xtts_settings

    settings = tiny_xtts_settings(
        tiny_xtts_dir,
        reference_clip,
        storage_root=tmp_path_factory.mktemp("xtts-storage"),
        synthesizer={"min_replicas": 1, "max_replicas": 1, "num_cpus": 1},
    )
    serve.run(build_app(settings), name="voicegraph-xtts", route_prefix="/xtts")
    yield Service(f"{service.url}/xtts", settings.storage_root, settings)
    serve.delete("voicegraph-xtts")
