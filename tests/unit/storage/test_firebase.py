"""FirebaseStorage against the real gcp-storage-emulator, through firebase-admin."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.helpers.ports import free_port
from voicegraph.core.settings import FirebaseSettings
from voicegraph.storage.firebase import BucketUnavailable, FirebaseStorage, open_bucket

pytestmark = pytest.mark.usefixtures("isolated_firebase")


def open_storage(emulator, **settings) -> tuple[FirebaseStorage, object]:
    config = FirebaseSettings(
        bucket=emulator.bucket, emulator_host=emulator.host, timeout_s=1, retry_deadline_s=2, **settings
    )
    bucket = open_bucket(config)
    storage = FirebaseStorage(
        bucket,
        url_mode=config.url_mode,
        signed_url_ttl_s=config.signed_url_ttl_s,
        timeout_s=config.timeout_s,
        retry_deadline_s=config.retry_deadline_s,
    )
    return storage, bucket


@pytest.fixture
def public(gcs_emulator):
    return open_storage(gcs_emulator, url_mode="public")


def test_round_trip_keeps_bytes_and_content_type(public):
    storage, bucket = public
    stored = storage.put("tts_generations/a.mp3", b"ID3 audio", "audio/mpeg")
    assert (stored.key, stored.size_bytes, stored.content_type) == ("tts_generations/a.mp3", 9, "audio/mpeg")
    assert storage.get("tts_generations/a.mp3") == b"ID3 audio"
    assert bucket.get_blob("tts_generations/a.mp3").content_type == "audio/mpeg"
    assert storage.exists("tts_generations/a.mp3")
    assert not storage.exists("tts_generations/b.mp3")


def test_put_overwrites_unless_create_only(public):
    storage, _ = public
    storage.put("voice_profiles/voice_x.json", b"{}", "application/json")
    storage.put("voice_profiles/voice_x.json", b'{"v": 2}', "application/json")
    assert storage.get("voice_profiles/voice_x.json") == b'{"v": 2}'
    with pytest.raises(FileExistsError):
        storage.put("voice_profiles/voice_x.json", b"{}", "application/json", create_only=True)
    assert storage.get("voice_profiles/voice_x.json") == b'{"v": 2}'
    storage.put("voice_profiles/voice_y.json", b"{}", "application/json", create_only=True)
    assert storage.get("voice_profiles/voice_y.json") == b"{}"


@pytest.mark.parametrize(
    "bodies, keys",
    [
        ([b"one", b"two", b"three"], ["t/a.wav", "t/a_2.wav", "t/a_3.wav"]),
        # The same bytes again: a retried upload, not a new object.
        ([b"one", b"one"], ["t/a.wav", "t/a.wav"]),
        ([b"one", b"two", b"two"], ["t/a.wav", "t/a_2.wav", "t/a_2.wav"]),
    ],
)
def test_write_new_suffixes_taken_names_and_is_idempotent(public, bodies, keys):
    storage, bucket = public
    assert [storage.write_new("t/a.wav", body, "audio/wav").key for body in bodies] == keys
    for key, body in zip(keys, bodies):
        assert storage.get(key) == body
        assert bucket.get_blob(key).content_type == "audio/wav"


def test_missing_objects(public):
    storage, _ = public
    with pytest.raises(FileNotFoundError, match="voicegraph-test/nope.wav"):
        storage.get("nope.wav")
    assert storage.delete("nope.wav") is False
    storage.put("here.wav", b"x", "audio/wav")
    assert storage.delete("here.wav") is True
    assert not storage.exists("here.wav")


def test_list_by_prefix_is_sorted_and_stays_in_its_folder(public):
    storage, _ = public
    for key in [
        "voice_profiles/voice_b.json",
        "voice_profiles/voice_a.npy",
        "voice_profiles/voice_a.json",
        "voice_profiles/other.json",
        "voice_profiles/voice_deeper/x.json",
        "voice_samples/voice_a_sample.wav",
    ]:
        storage.put(key, b"x", "application/octet-stream")
    assert storage.list("voice_profiles/voice_") == [
        "voice_profiles/voice_a.json",
        "voice_profiles/voice_a.npy",
        "voice_profiles/voice_b.json",
    ]
    assert storage.list("nothing/here_") == []


def test_public_url_downloads_the_object(public, gcs_emulator):
    storage, _ = public
    stored = storage.write_new("tts_generations/p.wav", b"RIFF public", "audio/wav")
    assert stored.url == f"{gcs_emulator.url}/voicegraph-test/tts_generations/p.wav"
    response = httpx.get(stored.url)
    assert response.status_code == 200
    assert response.content == b"RIFF public"


class _TokenHandler(BaseHTTPRequestHandler):
    """Google's OAuth token endpoint, as far as a service account's refresh needs."""

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"access_token": "t", "expires_in": 3600, "token_type": "Bearer"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def token_server():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _TokenHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/token"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def service_account_file(tmp_path, token_server):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "voicegraph-test",
                "private_key_id": "test-key",
                "private_key": pem,
                "client_email": "voicegraph@voicegraph-test.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": token_server,
            }
        )
    )
    return path


def test_signed_url_downloads_the_object(gcs_emulator, service_account_file):
    storage, _ = open_storage(gcs_emulator, url_mode="signed", credentials_file=service_account_file)
    stored = storage.write_new("tts_generations/s.wav", b"RIFF signed", "audio/wav")
    assert stored.url.startswith(f"{gcs_emulator.url}/voicegraph-test/tts_generations/s.wav?")
    assert "X-Goog-Signature=" in stored.url
    response = httpx.get(stored.url)
    assert response.status_code == 200
    assert response.content == b"RIFF signed"


def test_bucket_down_fails_fast_then_recovers(public, gcs_emulator):
    storage, _ = public
    storage.put("tts_generations/kept.wav", b"kept", "audio/wav")
    gcs_emulator.stop()
    for call in [
        lambda: storage.get("tts_generations/kept.wav"),
        lambda: storage.write_new("tts_generations/new.wav", b"new", "audio/wav"),
    ]:
        started = time.monotonic()
        with pytest.raises(BucketUnavailable, match="voicegraph-test/tts_generations/"):
            call()
        assert time.monotonic() - started < 5
    gcs_emulator.restart()
    assert storage.get("tts_generations/kept.wav") == b"kept"


def test_signed_urls_need_signing_credentials(gcs_emulator):
    with pytest.raises(ValueError, match="credentials_file"):
        open_storage(gcs_emulator, url_mode="signed")
