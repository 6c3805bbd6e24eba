"""Engine piper (the default) through the real Serve graph over HTTP, on the bundled voice."""

import base64

import httpx
import openai
import pytest
from ray import serve

from tests.helpers.audio import decode, ffmpeg_decode, wav_bytes
from tests.helpers.texts import service_chunks
from voicegraph.engines.espeak import EspeakEngine

pytestmark = pytest.mark.integration

JOE = "en_us-joe-medium"
SENTENCE = "The quick brown fox jumps over the lazy dog while the band plays on."


@pytest.fixture()
def piper(piper_service):
    with httpx.Client(base_url=piper_service.url, timeout=300) as http:
        yield http


def test_health_names_engine_and_voice(piper):
    body = piper.get("/health").json()
    assert (body["engine"], body["default_voice"], body["sample_rate"], body["can_clone"]) == ("piper", JOE, 22050, False)


def test_voices_list_the_bundled_voice_with_its_language_and_rate(piper):
    body = piper.get("/v1/voices").json()
    assert (body["engine"], body["default_voice"], body["default_language"]) == ("piper", JOE, "en-us")
    assert [(v["id"], v["language"], v["sample_rate"]) for v in body["voices"]] == [(JOE, "en-us", 22050)]


def test_speech_at_the_voices_rate_and_a_plausible_length(piper):
    response = piper.post("/v1/tts", json={"text": SENTENCE})
    assert response.status_code == 200, response.text
    pcm, rate = decode(response.content)
    assert rate == 22050
    seconds = len(pcm) / rate
    assert seconds == pytest.approx(float(response.headers["x-audio-duration"]), abs=0.01)
    assert 2.0 < seconds < 7.0


@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus", "aac", "flac", "pcm"])
def test_every_format_decodes_to_the_same_length(piper, fmt):
    response = piper.post("/v1/tts", json={"text": SENTENCE, "format": fmt})
    assert response.status_code == 200, response.text
    expected = float(response.headers["x-audio-duration"])
    if fmt == "pcm":
        assert response.headers["content-type"] == "audio/L16; rate=22050; channels=1"
        seconds = len(response.content) / 2 / 22050
    elif fmt == "aac":
        seconds = len(ffmpeg_decode(response.content)) / 22050
    else:
        pcm, rate = decode(response.content)
        seconds = len(pcm) / rate
    # Lossy codecs pad a frame or two at the ends.
    assert seconds == pytest.approx(expected, abs=0.1)


def test_a_long_text_fans_out_over_both_replicas(piper):
    synthesizer = serve.get_deployment_handle("Synthesizer-piper", "voicegraph-piper")
    before = _chunks_by_replica(synthesizer)
    text = " ".join([SENTENCE] * 30)  # 2,069 characters
    response = piper.post("/v1/tts", json={"text": text, "format": "pcm"})
    assert response.status_code == 200, response.text
    chunks = int(response.headers["x-chunk-count"])
    # Two sentences a chunk, but the first chunk (at most first_chunk_chars) holds one.
    assert chunks == len(service_chunks(text, 200)) == 16
    after = _chunks_by_replica(synthesizer)
    done = {replica: after[replica] - before.get(replica, 0) for replica in after}
    assert len(done) == 2 and sum(done.values()) == chunks and min(done.values()) >= 1, done


def _chunks_by_replica(handle) -> dict[str, int]:
    """Each replica's chunk count: ask until both have answered (requests are spread at random)."""
    seen: dict[str, int] = {}
    for _ in range(60):
        info = handle.replica_info.remote().result()
        seen[info["replica_id"]] = info["chunks_done"]
        if len(seen) == 2:
            break
    return seen


def test_stream_carries_the_whole_audio(piper):
    text = " ".join([SENTENCE] * 8)  # two chunks
    whole = piper.post("/v1/tts", json={"text": text, "format": "pcm"})
    with piper.stream("POST", "/v1/tts/stream", json={"text": text, "format": "pcm"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "audio/L16; rate=22050; channels=1"
        streamed = b"".join(response.iter_bytes())
    # VITS samples its phoneme durations, so two runs of a text differ by a few percent.
    assert len(streamed) / 2 / 22050 == pytest.approx(len(whole.content) / 2 / 22050, rel=0.05)


def test_captions_end_where_the_audio_ends(piper):
    text = "The first sentence is short. The second one is a good deal longer than the first one was! " * 4
    response = piper.post("/v1/tts", json={"text": text, "captions": "json"})
    assert response.status_code == 200, response.text
    body = response.json()
    pcm, rate = decode(base64.b64decode(body["audio_base64"]))
    cues = body["captions"]
    assert len(cues) == 8 and cues[0]["text"] == "The first sentence is short."
    assert cues[-1]["end"] == pytest.approx(len(pcm) / rate, abs=0.0015)


def test_the_openai_route_speaks_with_the_voice(piper_service):
    with openai.OpenAI(base_url=f"{piper_service.url}/v1", api_key="unused", max_retries=0) as client:
        response = client.audio.speech.create(model="tts-1", voice=JOE, input=SENTENCE)
    assert response.response.headers["content-type"] == "audio/mpeg"
    assert 2.0 < len(ffmpeg_decode(response.content)) / 22050 < 7.5


def test_a_language_the_voice_does_not_speak_is_refused(piper):
    response = piper.post("/v1/tts", json={"text": "Hallo Welt.", "language": "de"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unsupported_language"


def test_cloning_is_refused_with_a_pointer_to_xtts(piper, reference_server):
    reference = wav_bytes(EspeakEngine().synthesize(SENTENCE * 2, "deep", "en-us", 1.0), 22050)
    created = piper.post("/v1/voices", files={"file": ("r.wav", reference)}, data={"name": "Mine"})
    assert created.status_code == 422, created.text
    error = created.json()["error"]
    assert error["code"] == "cloning_unsupported" and "xtts" in error["message"]
    url = reference_server.publish("/piper-ref.wav", reference, '"p1"')
    downloads = reference_server.full_downloads
    spoken = piper.post("/v1/tts", json={"text": "Hello.", "voice_url": url})
    assert spoken.status_code == 422 and spoken.json()["error"]["code"] == "cloning_unsupported"
    assert reference_server.full_downloads == downloads  # refused before anything was fetched
