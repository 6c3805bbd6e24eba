import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_serve(num_cpus: int) -> Iterator[str]:
    """A real local Ray with Serve's HTTP proxy on a free loopback port; yields its base URL."""
    import ray
    from ray import serve

    port = free_port()
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, namespace="serve", log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        yield f"http://127.0.0.1:{port}"
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
