"""The real graph over real HTTP: speech that decodes, right lengths, right errors."""

import base64
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.helpers.audio import decode, ffmpeg_decode, median_f0, speech_seconds
from tests.helpers.captions import CAPTIONED, parse_cues
from tests.helpers.local_serve import PATIENT_ADMISSION
from tests.helpers.texts import long_text, service_chunks
from voicegraph.engines.espeak import EspeakEngine
from voicegraph.text.chunking import clean_text

pytestmark = pytest.mark.integration

SENTENCE = "The quick brown fox jumps over the lazy dog while the band plays on."


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
    assert len(clean_text(text)) == 13_000
    response = client.post("/v1/tts", json={"text": text, "save": True})
    assert response.status_code == 200, response.text
    saved = response.json()
    chunks = saved["chunks"]
    expected_chunks = service_chunks(text, EspeakEngine().info().chunk_chars_for("en-us"))
    assert [c["characters"] for c in chunks] == [len(c) for c in expected_chunks]
    assert response.headers["x-chunk-count"] == str(len(expected_chunks)) != "1"

    pcm, rate = decode((service.storage_root / saved["path"]).read_bytes())
    pause_s = int(rate * service.settings.pause_ms / 1000) / rate
    expected_s = sum(c["duration_s"] for c in chunks) + pause_s * (len(chunks) - 1)
    assert len(pcm) / rate == pytest.approx(expected_s, abs=1e-6)
    assert len(pcm) / rate == pytest.approx(saved["duration_s"], abs=1e-6)
    # Nothing cut off: there is still speech in the last few seconds.
    assert speech_seconds(pcm[-5 * rate :], rate) > 1.0

    # Each chunk, spoken on its own by the engine, is as long as its slot in
    # the file, in order. (Not through the service: it would cut a chunk of
    # several sentences again, its first chunk short.)
    engine = EspeakEngine()
    voice = engine.info().voices[0].id
    for index in (0, 1, len(expected_chunks) // 2, len(expected_chunks) - 1):
        alone_s = len(engine.synthesize(expected_chunks[index], voice, "en-us", 1.0)) / rate
        assert chunks[index]["duration_s"] == pytest.approx(alone_s, rel=0.01), index


@pytest.fixture(scope="module")
def long_chunks_url(service, tmp_path_factory):
    """The graph with chunks of up to 3,000 characters, beside the default one."""
    from ray import serve

    from serve_app.app import build_app
    from voicegraph.core.settings import Settings

    settings = Settings(
        engine="espeak",
        storage_root=tmp_path_factory.mktemp("long-chunks-storage"),
        chunk_chars=3000,
        synthesizer={"min_replicas": 1, "max_replicas": 1},
        admission=PATIENT_ADMISSION,
    )
    serve.run(build_app(settings), name="voicegraph-long-chunks", route_prefix="/long-chunks")
    yield f"{service.url}/long-chunks"
    serve.delete("voicegraph-long-chunks")


def test_audio_over_grpcs_default_message_size_arrives_whole(long_chunks_url):
    # The Ingress takes a chunk's audio, and Serve's proxy the response, as
    # one gRPC message each; gRPC refuses over 4 MiB unless told otherwise.
    text = long_text(2500, start=700)
    response = httpx.post(f"{long_chunks_url}/v1/tts", json={"text": text, "speed": 0.5}, timeout=120)
    assert response.status_code == 200, response.text
    chunks = len(service_chunks(text, 3000))
    assert response.headers["x-chunk-count"] == str(chunks)
    # More than 4 MiB for every chunk: one chunk's audio at least was over 4 MiB.
    assert len(response.content) > chunks * 4 * 2**20
    pcm, rate = decode(response.content)
    assert len(pcm) / rate == pytest.approx(float(response.headers["x-audio-duration"]), abs=0.002)
    assert speech_seconds(pcm[-5 * rate :], rate) > 1.0


def test_a_long_mp3_is_joined_from_segments_as_long_as_its_chunks(client):
    text = long_text(3000, start=300)  # its own text: synthesized, not a cache hit
    response = client.post("/v1/tts", json={"text": text, "format": "mp3"})
    assert response.status_code == 200, response.text
    assert int(response.headers["x-chunk-count"]) > 3
    data = response.content
    # No ID3 tag: the file starts with the Info frame join_segments filled in
    # (its music CRC left 0, where a one-pass encode writes the real one).
    assert data[:2] == b"\xff\xf3", data[:4]
    info = data.find(b"Info")
    assert 0 < info < 40 and data[info + 152 : info + 154] == b"\0\0"
    pcm = ffmpeg_decode(data, seekable=True)
    # The tag's delay and padding make decoders give back exactly the audio:
    # every join, the start and the end are exact.
    # (X-Audio-Duration is rounded to the millisecond.)
    assert len(pcm) / 22050 == pytest.approx(float(response.headers["x-audio-duration"]), abs=0.0005)
    assert speech_seconds(pcm[-5 * 22050 :], 22050) > 1.0  # nothing cut off


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


def test_voices_lists_presets_and_languages(client):
    body = client.get("/v1/voices").json()
    presets = {v["id"] for v in body["voices"] if v["kind"] == "preset"}
    assert presets == {"default", "deep", "bright", "soft", "brisk"}
    assert body["default_voice"] == "default" and body["default_language"] == "en-us"
    assert {"en-us", "de", "fr"} <= set(body["languages"])


def test_health_reports_versions_and_engine(client):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert (body["engine"], body["model"], body["can_clone"]) == ("espeak", "espeak-ng-1.52", True)
    assert body["limits"] == {"max_text_chars": 13_000, "min_speed": 0.5, "max_speed": 2.0}
    assert body["api_keys"] is False
    assert body["ray_version"].startswith("2.")
    assert re.fullmatch(r"\d+\.\d+\.\d+", body["python_version"])
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True)
    assert body["git_sha"] == (head.stdout.strip() if head.returncode == 0 else "unknown")


def test_openapi_docs_are_served(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/v1/tts", "/v1/voices", "/health"} <= set(spec["paths"])


@pytest.mark.parametrize("written, spoken", [
    ("It costs $3.50, not 12%.", "It costs three dollars and fifty cents, not twelve percent."),
    ("We met on 2026-11-21 at 3:30pm.", "We met on November twenty-first, twenty twenty-six at three thirty p m."),
    ("Dr. Smith ran 5 km on the 1st.", "Doctor Smith ran five kilometres on the first."),
    ("Mail jane.doe@example.com today.", "Mail jane dot doe at example dot com today."),
])
def test_text_is_normalised_before_it_is_spoken(client, written, spoken):
    def seconds(body) -> float:
        response = client.post("/v1/tts", json=body)
        assert response.status_code == 200, response.text
        return float(response.headers["x-audio-duration"])

    as_written = seconds({"text": written})
    as_spoken = seconds({"text": spoken, "normalize": False})
    # The same words: the same length (eSpeak varies by a few ms per call).
    assert as_written == pytest.approx(as_spoken, abs=0.06)
    # eSpeak's own reading of the raw text differs, so the check can fail.
    assert seconds({"text": written, "normalize": False}) != pytest.approx(as_spoken, abs=0.06)


@pytest.mark.parametrize("fmt", ["json", "vtt", "srt"])
def test_captions_line_up_with_the_audio(client, fmt):
    response = client.post("/v1/tts", json={"text": CAPTIONED, "captions": fmt, "format": "wav"})
    assert response.status_code == 200, response.text
    body = response.json()
    pcm, rate = decode(base64.b64decode(body["audio_base64"]))
    audio_seconds = len(pcm) / rate
    assert body["duration_s"] == pytest.approx(audio_seconds, abs=1e-3)
    assert int(response.headers["x-chunk-count"]) > 1
    captions = body["captions"]
    if fmt == "json":
        cues = [(c["start"], c["end"], c["text"]) for c in captions]
    else:
        cues = parse_cues(captions, "," if fmt == "srt" else ".")
        assert captions.startswith("WEBVTT") if fmt == "vtt" else captions.startswith("1\n")
    assert len(cues) == 36
    assert cues[0][0] == 0 and cues[0][2] == "The first sentence is short."
    assert cues[2][2] == "Is the third a question?"
    # The last caption ends where the audio does, to the millisecond.
    assert cues[-1][1] == pytest.approx(audio_seconds, abs=0.0015)
    assert all(a[1] <= b[0] for a, b in zip(cues, cues[1:]))  # ordered, never overlapping
    # Longer sentences get more time.
    assert cues[1][1] - cues[1][0] > 1.5 * (cues[0][1] - cues[0][0])


def test_saved_speech_carries_captions(client, service):
    response = client.post("/v1/tts", json={"text": CAPTIONED, "captions": "vtt", "save": True})
    assert response.status_code == 200
    body = response.json()
    assert body["captions"].startswith("WEBVTT")
    pcm, rate = decode((service.storage_root / body["path"]).read_bytes())
    last_end = parse_cues(body["captions"], ".")[-1][1]
    assert last_end == pytest.approx(len(pcm) / rate, abs=0.0015)
