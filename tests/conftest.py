import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest


def service_chunks(text: str, max_chars: int, language: str = "en-us") -> list[str]:
    """The chunks the graph makes of `text` with the default settings: the
    text's head (its first chunk short) and the rest, each chunked on its own."""
    from voicegraph.core.settings import Settings
    from voicegraph.text.chunking import check_text, speakable_chunks, split_head

    first_chunk_chars = Settings().first_chunk_chars
    head, rest = split_head(check_text(text, len(text) + 1), max_chars, language)
    chunks = speakable_chunks(head, max_chars, language, True, first_chunk_chars)
    chunks += speakable_chunks(rest, max_chars, language, True) if rest else []
    return [chunk.text for chunk in chunks]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


@pytest.fixture(scope="session")
def tiny_xtts_dir(tmp_path_factory):
    """A tiny random XTTS checkpoint, built once per run, never committed."""
    from voicegraph.engines.xtts_tiny import build_tiny_xtts

    return build_tiny_xtts(tmp_path_factory.mktemp("tiny-xtts"))


@pytest.fixture(scope="session")
def reference_clip(tmp_path_factory):
    """Real speech to clone from: 4 s of eSpeak's deep voice as a WAV file."""
    import soundfile

    from voicegraph.engines.espeak import EspeakEngine

    pcm = EspeakEngine().synthesize(
        "This is a reference recording of a speaking voice, made for cloning tests.", "deep", "en-us", 1.0
    )
    path = tmp_path_factory.mktemp("reference") / "reference.wav"
    soundfile.write(path, pcm, 22050)
    return path


def tiny_xtts_settings(model_dir, reference_clip, **overrides):
    """Settings for the tiny checkpoint: short generations keep tests quick."""
    from voicegraph.core.settings import Settings

    xtts = {"voice_clips": {"narrator": [str(reference_clip)]}, "tokens_per_char": 0.5, "min_new_tokens": 8}
    return Settings(engine="xtts", model_dir=model_dir, xtts=xtts, **overrides)


@pytest.fixture
def gcs_emulator(tmp_path):
    """A started gcp-storage-emulator with the bucket "voicegraph-test", on disk under tmp_path."""
    from tests.gcs_emulator import GcsEmulator

    emulator = GcsEmulator(tmp_path / "gcs", port=free_port(), bucket="voicegraph-test")
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def isolated_firebase(monkeypatch):
    """open_bucket sets STORAGE_EMULATOR_HOST and creates process-global apps:
    both are undone so no test sees another's emulator or credentials."""
    import firebase_admin

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    before = set(firebase_admin._apps)
    yield
    for name in set(firebase_admin._apps) - before:
        firebase_admin.delete_app(firebase_admin.get_app(name))


class RecordedMetrics:
    """A metrics sink that keeps what Ray-free code records (voicegraph.core.metrics)."""

    def __init__(self):
        self.records = []

    def record(self, spec, value, tags):
        self.records.append((spec.name, value, tags))

    def total(self, name, **tags):
        return sum(value for record, value, got in self.records if record == name and tags.items() <= got.items())


@pytest.fixture()
def recorded_metrics():
    from voicegraph.core import metrics

    sink = RecordedMetrics()
    metrics.install(sink)
    yield sink
    metrics.install(None)
