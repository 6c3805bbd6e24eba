"""The real graph over real HTTP: speech that decodes, right lengths, right errors."""

import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from deployments.chunker import chunk_text, normalize_text
from deployments.engines.espeak import EspeakEngine
from tests.audio import decode, median_f0, speech_seconds

pytestmark = pytest.mark.integration

SENTENCE = "The quick brown fox jumps over the lazy dog while the band plays on."


def long_text(characters: int) -> str:
    """Sentences of varied length, so chunk durations differ and order shows."""
    sentences, i = [], 0
    while sum(len(s) + 1 for s in sentences) < characters:
        sentences.append(" ".join(["word"] * (3 + i % 11)) + f" number {i}.")
        i += 1
    return " ".join(sentences)[:characters].rstrip(" ")


def test_wav_is_speech_of_plausible_length(client):
    response = client.post("/v1/tts", json={"text": SENTENCE})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["x-chunk-count"] == "1"
    assert re.fullmatch(r"[0-9a-f-]{16,}", response.headers["x-request-id"])
    pcm, rate = decode(response.content)
    seconds = len(pcm) / rate
    assert seconds == pytest.approx(float(response.headers["x-audio-duration"]), abs=0.002)
    words = len(SENTENCE.split())
    assert words / 5.0 < seconds < words / 1.2  # 1.2 to 5 words a second
    assert speech_seconds(pcm, rate) > 0.5 * seconds
    assert 70 < median_f0(pcm, rate) < 160


def test_long_text_is_one_file_as_long_as_its_chunks(client, service):
    text = long_text(13_000)
    assert len(normalize_text(text)) == 13_000
    response = client.post("/v1/tts", json={"text": text, "save": True})
    assert response.status_code == 200, response.text
    saved = response.json()
    chunks = saved["chunks"]
    expected_chunks = chunk_text(text, EspeakEngine().info().chunk_chars_for("en-us"))
    assert [c["characters"] for c in chunks] == [len(c) for c in expected_chunks]
    assert response.headers["x-chunk-count"] == str(len(expected_chunks)) != "1"

    pcm, rate = decode((service.storage_root / saved["path"]).read_bytes())
    pause_s = int(rate * service.settings.pause_ms / 1000) / rate
    expected_s = sum(c["duration_s"] for c in chunks) + pause_s * (len(chunks) - 1)
    assert len(pcm) / rate == pytest.approx(expected_s, abs=1e-6)
    assert len(pcm) / rate == pytest.approx(saved["duration_s"], abs=1e-6)
    # Nothing cut off: there is still speech in the last few seconds.
    assert speech_seconds(pcm[-5 * rate :], rate) > 1.0

    # Each chunk, spoken on its own, is as long as its slot in the file, in order.
    for index in (0, 1, len(expected_chunks) // 2, len(expected_chunks) - 1):
        alone = client.post("/v1/tts", json={"text": expected_chunks[index], "format": "pcm"})
        alone_s = len(alone.content) / 2 / rate
        assert chunks[index]["duration_s"] == pytest.approx(alone_s, rel=0.01), index


@pytest.mark.parametrize(
    "fmt, content_type",
    [
        ("wav", "audio/wav"),
        ("mp3", "audio/mpeg"),
        ("opus", "audio/ogg; codecs=opus"),
        ("flac", "audio/flac"),
        ("pcm", "audio/L16; rate=22050; channels=1"),
    ],
)
def test_every_format_decodes(client, fmt, content_type):
    response = client.post("/v1/tts", json={"text": SENTENCE, "format": fmt, "voice": "bright"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type
    if fmt == "pcm":
        pcm, rate = np.frombuffer(response.content, "<i2").astype(np.float32) / 32768, 22050
    else:
        pcm, rate = decode(response.content)
    assert len(pcm) / rate == pytest.approx(float(response.headers["x-audio-duration"]), abs=0.08)
    assert median_f0(pcm, rate) > 180  # the bright voice, whatever the codec


def test_save_stores_the_file_in_the_layout(client, service):
    response = client.post("/v1/tts", json={"text": SENTENCE, "voice": "deep", "format": "flac", "save": True})
    assert response.status_code == 200, response.text
    saved = response.json()
    assert re.fullmatch(r"tts_generations/TTS_voice_deep_\d{8}_\d{6}(_\d+)?\.flac", saved["path"])
    stored = service.storage_root / saved["path"]
    assert saved["url"] == stored.resolve().as_uri()
    assert stored.stat().st_size == saved["size_bytes"]
    pcm, rate = decode(stored.read_bytes())
    assert len(pcm) / rate == pytest.approx(saved["duration_s"], abs=0.01)
    assert (saved["voice"], saved["language"], saved["engine"]) == ("deep", "en-us", "espeak")
    assert saved["request_id"] == response.headers["x-request-id"]


def test_concurrent_requests_keep_their_own_voices(client):
    voices = ["deep", "bright", "default", "soft"] * 3

    def speak(voice):
        response = client.post("/v1/tts", json={"text": long_text(1500), "voice": voice})
        assert response.status_code == 200, response.text
        return median_f0(*decode(response.content))

    with ThreadPoolExecutor(max_workers=6) as pool:
        f0 = list(pool.map(speak, voices))
    by_voice = {voice: [f for v, f in zip(voices, f0) if v == voice] for voice in set(voices)}
    # Every request's pitch sits in its own voice's band, never in another's.
    for lower, higher in [("deep", "default"), ("default", "soft"), ("soft", "bright")]:
        assert max(by_voice[lower]) < min(by_voice[higher]), (lower, higher, by_voice)


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    "body, headers, status, code, hint",
    [
        ({"text": ""}, JSON, 422, "empty_text", "empty"),
        ({"text": " \n\t "}, JSON, 422, "empty_text", "empty"),
        ({"text": "x " * 6501}, JSON, 422, "text_too_long", "limit is 13000"),
        ({"text": "hi", "voice": "nobody"}, JSON, 422, "unknown_voice", "GET /v1/voices"),
        ({"text": "hi", "language": "en-uss"}, JSON, 422, "unsupported_language", "Did you mean en-us"),
        ({"text": "hi", "format": "aac"}, JSON, 422, "unsupported_format", "wav, mp3, opus, flac, pcm"),
        ({"text": "hi", "speed": 3}, JSON, 422, "speed_out_of_range", "0.5 to 2.0"),
        ({"text": "hi", "speed": 0}, JSON, 422, "speed_out_of_range", "0.5 to 2.0"),
        ({"text": "hi", "speed": "fast"}, JSON, 422, "invalid_request", "speed"),
        ({"voice": "deep"}, JSON, 422, "invalid_request", "text: Field required"),
        ({"text": "hi", "voise": "deep"}, JSON, 422, "invalid_request", "voise"),
        ({"text": 42}, JSON, 422, "invalid_request", "text"),
        (b'{"text": "hi",', JSON, 400, "malformed_json", "not valid JSON"),
        (b"[1, 2]", JSON, 422, "invalid_request", "valid dictionary"),
        (b"text=hi", {"content-type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type", "application/json"),
        (b"hi", {"content-type": "text/plain"}, 415, "unsupported_media_type", "application/json"),
        (b'{"text": "' + b"x" * 1_100_000 + b'"}', JSON, 413, "payload_too_large", "larger than"),
    ],
)
def test_bad_input_gets_a_clear_4xx(client, body, headers, status, code, hint):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post("/v1/tts", content=content, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert hint in error["message"]
    assert error["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize("method, path, status, code", [("GET", "/v1/nothing", 404, "not_found"), ("GET", "/v1/tts", 405, "method_not_allowed")])
def test_unknown_routes_use_the_error_shape(client, method, path, status, code):
    response = client.request(method, path)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_voices_lists_presets_and_languages(client):
    body = client.get("/v1/voices").json()
    presets = {v["id"] for v in body["voices"] if v["kind"] == "preset"}
    assert presets == {"default", "deep", "bright", "soft", "brisk"}
    assert body["default_voice"] == "default" and body["default_language"] == "en-us"
    assert {"en-us", "de", "fr"} <= set(body["languages"])


def test_health_reports_versions_and_engine(client):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert (body["engine"], body["model"]) == ("espeak", "espeak-ng-1.52")
    assert body["ray_version"].startswith("2.")
    assert re.fullmatch(r"\d+\.\d+\.\d+", body["python_version"])
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True)
    assert body["git_sha"] == (head.stdout.strip() if head.returncode == 0 else "unknown")


def test_openapi_docs_are_served(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/v1/tts", "/v1/voices", "/health"} <= set(spec["paths"])
