import pytest

from tests.helpers.ports import free_port


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


@pytest.fixture
def gcs_emulator(tmp_path):
    """A started gcp-storage-emulator with the bucket "voicegraph-test", on disk under tmp_path."""
    from tests.helpers.gcs_emulator import GcsEmulator

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


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the whole run (tests.helpers.postgres); each
    test that needs one asks it for a new database."""
    from tests.helpers.postgres import PostgresServer

    server = PostgresServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
