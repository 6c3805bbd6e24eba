"""One real local Ray and the real Serve graph for the whole test session.

The other graphs live only as long as the module that uses them: an idle
graph's replicas still poll their job database and answer health checks, and
on a 2-core machine a session's worth of them slowed the last modules until
their requests were refused as overload. Graphs that are not testing
admission get PATIENT_ADMISSION."""

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.helpers.local_serve import PATIENT_ADMISSION, Service, local_serve
from tests.helpers.ports import free_port
from voicegraph.core.settings import Settings


@dataclass
class ReferenceServer:
    """A real HTTP server on loopback serving reference recordings, as a
    voice_url host would: ETag and Last-Modified, 304 on a match, and counts."""

    url: str
    port: int
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # path → (body, etag)
    # path → requests answered before it disappears (404), like a link that expires
    lifetimes: dict[str, int] = field(default_factory=dict)
    full_downloads: int = 0
    not_modified: int = 0

    def publish(self, path: str, body: bytes, etag: str, requests: int | None = None) -> str:
        self.files[path] = (body, etag)
        if requests is not None:
            self.lifetimes[path] = requests
        return self.url + path


_LAST_MODIFIED = "Sat, 21 Nov 2026 09:00:00 GMT"


def _reference_handler(server: ReferenceServer):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            entry = server.files.get(self.path)
            if self.path in server.lifetimes:
                server.lifetimes[self.path] -= 1
                if server.lifetimes[self.path] < 0:
                    entry = None
            if entry is None:
                self.send_error(404)
                return
            body, etag = entry
            if self.headers.get("If-None-Match") == etag:
                server.not_modified += 1
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            server.full_downloads += 1
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", _LAST_MODIFIED)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture(scope="session")
def reference_server():
    port = free_port()
    server = ReferenceServer(url=f"http://127.0.0.1:{port}", port=port)
    httpd = ThreadingHTTPServer(("127.0.0.1", port), _reference_handler(server))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    httpd.shutdown()
    httpd.server_close()


CALLBACK_SECRET = "integration-test-secret"


@pytest.fixture(scope="session")
def receiver():
    """The customer's app: a real HTTP server receiving job callbacks."""
    from tests.helpers.callback_receiver import CallbackReceiver

    with CallbackReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def service(tmp_path_factory, reference_server, receiver) -> Service:
    from ray import serve

    from serve_app.app import build_app

    settings = Settings(
        # eSpeak: the fastest engine, for every test that only needs an engine.
        engine="espeak",
        storage_root=tmp_path_factory.mktemp("storage"),
        # Two replicas from the start, so every long text is fanned out across both.
        synthesizer={"min_replicas": 2, "max_replicas": 2},
        # Loopback is refused for outbound URLs unless allow-listed: only these ports are.
        outbound={"allow": [f"127.0.0.1:{reference_server.port}", f"127.0.0.1:{receiver.port}"]},
        # Short leases and quick retries, so takeovers and redeliveries happen within a test.
        jobs={"lease_s": 3, "heartbeat_s": 0.3, "poll_interval_s": 0.3, "storage_retry_s": 60, "gauges_interval_s": 0.5},
        callbacks={"secret": CALLBACK_SECRET, "initial_backoff_s": 0.2, "max_backoff_s": 1.0, "poll_interval_s": 0.2},
        # Small, so the over-limit upload test sends little.
        voices={"max_upload_bytes": 2_000_000},
        # Small, so audio over the base64 limit costs a short text.
        serverless={"max_base64_bytes": 2_000_000},
        # As in the cluster configs, so the log tests read what operators query.
        log_encoding="JSON",
        admission=PATIENT_ADMISSION,
    )
    # Logical CPUs: the fractional requests of every application the session
    # deploys beside this one (Piper, XTTS, keyed, serverless, ops: ~8 in all)
    # fit even on a 2-core machine; too few and the last one never deploys.
    with local_serve(num_cpus=12) as local:
        serve.run(build_app(settings), name="voicegraph", route_prefix="/")
        yield Service(local.url, settings.storage_root, settings, local.metrics_url)


@pytest.fixture()
def client(service):
    with httpx.Client(base_url=service.url, timeout=120) as http:
        yield http


# Voices built from the bundled one: their own names and configs, and no
# sampled noise, so a voice reloaded after an eviction says a text the same.
EXTRA_PIPER_VOICES = {"en_US-a-medium": 1.0, "en_US-b-medium": 1.3, "en_US-c-medium": 0.8, "en_US-d-medium": 1.1}


@pytest.fixture(scope="module")
def piper_service(service, tmp_path_factory, reference_server) -> Service:
    """Piper and eSpeak side by side in one graph, Piper the default engine:
    the bundled voice and four made from it in voices_dir, two held per
    Synthesizer-piper replica at most."""
    from ray import serve

    from serve_app.app import build_app
    from tests.helpers.piper_voices import link_voice

    voices_dir = tmp_path_factory.mktemp("piper-voices")
    for name, length_scale in EXTRA_PIPER_VOICES.items():
        link_voice(voices_dir, name, {"inference": {"noise_scale": 0.0, "noise_w": 0.0, "length_scale": length_scale}})
    settings = Settings(
        engines=["piper", "espeak"],
        default_voice="en_us-joe-medium",
        piper={"voices_dir": voices_dir, "max_voices_per_replica": 2},
        storage_root=tmp_path_factory.mktemp("piper-storage"),
        synthesizer={"min_replicas": 2, "max_replicas": 2},
        synthesizers={"espeak": {"min_replicas": 1, "max_replicas": 1}},
        # tts-1-hd prefers XTTS, which this graph lacks: the next preference speaks.
        openai={"models": {"tts-1": ["piper"], "tts-1-hd": ["xtts", "espeak"]}},
        response_cache={"enabled": False},
        outbound={"allow": [f"127.0.0.1:{reference_server.port}"]},
        admission=PATIENT_ADMISSION,
    )
    serve.run(build_app(settings), name="voicegraph-piper", route_prefix="/piper")
    yield Service(f"{service.url}/piper", settings.storage_root, settings)
    serve.delete("voicegraph-piper")


@pytest.fixture(scope="module")
def xtts_service(service, tiny_xtts_dir, reference_clip, tmp_path_factory) -> Service:
    """The same graph with engine xtts on the tiny checkpoint, beside the eSpeak one."""
    from ray import serve

    from serve_app.app import build_app
    from tests.helpers.xtts import tiny_xtts_settings

    settings = tiny_xtts_settings(
        tiny_xtts_dir,
        reference_clip,
        storage_root=tmp_path_factory.mktemp("xtts-storage"),
        # A longer wait than the default's 10 ms: chunks sent together batch
        # together even on a busy 2-core machine.
        synthesizer={"min_replicas": 1, "max_replicas": 1, "num_cpus": 1, "batch_wait_timeout_s": 0.1},
        admission=PATIENT_ADMISSION,
    )
    settings.xtts.stream_chunk_tokens = 8  # a chunk's 20-30 tokens stream as several pieces
    serve.run(build_app(settings), name="voicegraph-xtts", route_prefix="/xtts")
    yield Service(f"{service.url}/xtts", settings.storage_root, settings)
    serve.delete("voicegraph-xtts")


# Plain keys exist only here, as a client would hold them; the service gets digests.
API_KEYS = {"app": "vg_test-app-key", "old": "vg_test-revoked-key", "tight": "vg_test-tight-key", "wordy": "vg_test-wordy-key"}


@pytest.fixture(scope="module")
def keyed_service(service, tmp_path_factory) -> Service:
    """The graph with API keys on and two ingress replicas sharing the limits."""
    from ray import serve

    from serve_app.app import build_app
    from voicegraph.access.keys import hash_key

    def key(name, **limits):
        return {"name": name, "sha256": hash_key(API_KEYS[name]), **({"limits": limits} if limits else {})}

    settings = Settings(
        engine="espeak",
        storage_root=tmp_path_factory.mktemp("keyed-storage"),
        synthesizer={"min_replicas": 1, "max_replicas": 1},
        ingress={"num_replicas": 2, "num_cpus": 0.1},
        admission=PATIENT_ADMISSION,
        max_text_chars=400,
        auth={
            "enabled": True,
            "public_docs": False,
            "limits": {"requests_per_s": 50, "request_burst": 100, "chars_per_min": 100_000},
            "keys": [
                key("app"),
                {**key("old"), "revoked": True},
                # Four requests, then almost nothing: whatever replica a request reaches.
                key("tight", requests_per_s=0.01, request_burst=4, chars_per_min=400),
                key("wordy", requests_per_s=50, request_burst=100, chars_per_min=400),
            ],
        },
    )
    serve.run(build_app(settings), name="voicegraph-keyed", route_prefix="/keyed")
    yield Service(f"{service.url}/keyed", settings.storage_root, settings)
    serve.delete("voicegraph-keyed")


SERVERLESS_KEY = "vg_test-serverless-key"


@pytest.fixture(scope="module")
def serverless_service(service, tmp_path_factory, receiver) -> Service:
    """One runner slot, so a second job waits queued behind a long first one;
    texts long enough that a job is still running when the test cancels it;
    API keys on, as the platform's clients always send one."""
    from ray import serve

    from serve_app.app import build_app
    from voicegraph.access.keys import hash_key

    settings = Settings(
        engine="espeak",
        storage_root=tmp_path_factory.mktemp("serverless-storage"),
        synthesizer={"min_replicas": 1, "max_replicas": 1},
        max_text_chars=200_000,
        admission=PATIENT_ADMISSION,
        response_cache={"enabled": False},
        outbound={"allow": [f"127.0.0.1:{receiver.port}"]},
        jobs={"max_running_per_replica": 1, "lease_s": 3, "heartbeat_s": 0.3, "poll_interval_s": 0.3},
        callbacks={"initial_backoff_s": 0.2, "max_backoff_s": 1.0, "poll_interval_s": 0.2},
        auth={
            "enabled": True,
            "limits": {"requests_per_s": 100, "request_burst": 200, "chars_per_min": 10_000_000},
            "keys": [{"name": "serverless", "sha256": hash_key(SERVERLESS_KEY)}],
        },
    )
    serve.run(build_app(settings), name="voicegraph-serverless", route_prefix="/sls")
    yield Service(f"{service.url}/sls", settings.storage_root, settings)
    serve.delete("voicegraph-serverless")
