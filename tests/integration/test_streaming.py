"""POST /v1/tts/stream over real HTTP: order, formats, bounded lookahead, cancellation."""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.helpers.audio import decode, ffmpeg_decode
from tests.helpers.texts import long_text

pytestmark = pytest.mark.integration

SENTENCE = "The quick brown fox jumps over the lazy dog while the band plays on."
RATE = 22050


def segment_seconds(pcm: np.ndarray, min_gap: int) -> list[float]:
    """Durations of the stretches between runs of at least `min_gap` silent
    samples: the pauses the service puts between chunks (eSpeak's own silences
    are shorter), so these are the chunks' durations, in the order sent."""
    silent = np.concatenate([[False], pcm == 0, [False]])
    edges = np.flatnonzero(np.diff(silent.astype(np.int8)))
    starts, ends = edges[::2], edges[1::2]  # silent runs [start, end)
    gaps = [(a, b) for a, b in zip(starts, ends) if b - a >= min_gap and a > 0 and b < len(pcm)]
    bounds = [0, *[edge for gap in gaps for edge in gap], len(pcm)]
    return [(bounds[i + 1] - bounds[i]) / RATE for i in range(0, len(bounds), 2)]


def load(client) -> dict:
    return client.get("/health").json()["load"]


def test_stream_of_a_long_text_is_the_whole_text_in_order(client, service):
    text = long_text(13_000)
    whole = client.post("/v1/tts", json={"text": text, "save": True})
    assert whole.status_code == 200
    expected = [chunk["duration_s"] for chunk in whole.json()["chunks"]]

    with client.stream("POST", "/v1/tts/stream", json={"text": text, "format": "pcm"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("audio/L16; rate=22050")
        pieces = list(response.iter_bytes())
    streamed = np.frombuffer(b"".join(pieces), dtype="<i2")

    # Every chunk, in order: the stretches between the service's pauses have
    # the chunks' durations. eSpeak varies by up to ~50 ms from call to call;
    # the chunks differ from each other by far more, so a swap would show.
    pause = int(RATE * service.settings.pause_ms / 1000)
    durations = segment_seconds(streamed, min_gap=int(pause * 0.8))
    assert len(durations) == len(expected) > 20
    assert np.std(expected) > 0.3
    worst = max(abs(a - b) for a, b in zip(durations, expected))
    assert worst < 0.1, list(zip(durations, expected))
    assert len(pieces) > 5  # it arrived in pieces, not as one body


@pytest.mark.parametrize("fmt, content_type", [
    ("wav", "audio/wav"),
    ("mp3", "audio/mpeg"),
    ("opus", "audio/ogg; codecs=opus"),
])
def test_each_streaming_format_decodes_to_the_whole_speech(client, fmt, content_type):
    text = long_text(1200)
    whole = client.post("/v1/tts", json={"text": text, "format": "wav"})
    duration = len(decode(whole.content)[0]) / RATE
    with client.stream("POST", "/v1/tts/stream", json={"text": text, "format": fmt}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == content_type
        data = response.read()
    if fmt == "wav":
        assert data[:4] == b"RIFF" and data[40:44] == b"\xff\xff\xff\xff"  # length unknown up front
    pcm = ffmpeg_decode(data)
    # Codec padding adds a few ms; a lost or doubled chunk would be seconds.
    assert abs(len(pcm) / RATE - duration) < 0.15, (len(pcm) / RATE, duration)


def test_lookahead_bounds_the_chunks_under_way(client, service):
    lookahead = service.settings.stream_lookahead_chunks
    with ThreadPoolExecutor(max_workers=1) as pool:
        stream = pool.submit(client.post, "/v1/tts/stream", json={"text": long_text(13_000), "format": "pcm"})
        seen = []
        while not stream.done():
            seen.append(load(client)["chunks_in_flight"])
        assert stream.result().status_code == 200
    assert max(seen) <= lookahead
    assert max(seen) > 0  # the polls did see the stream at work


def test_a_client_that_disconnects_cancels_the_rest(service):
    text = long_text(13_000)
    with httpx.Client(base_url=service.url, timeout=60) as http:
        total_chunks = len(http.post("/v1/tts", json={"text": text, "save": True}).json()["chunks"])
        before = load(http)["chunks_done"]
        with http.stream("POST", "/v1/tts/stream", json={"text": text, "format": "mp3"}) as response:
            next(response.iter_bytes())
        # Leaving the block closed the connection after the first audio.
        deadline = time.monotonic() + 15
        while (now := load(http))["open_streams"] or now["chunks_in_flight"]:
            assert time.monotonic() < deadline, f"work kept running for a gone client: {now}"
            time.sleep(0.05)
        done = load(http)["chunks_done"] - before
        time.sleep(1)
        # The rest of the text was never synthesized, and nothing starts later.
        assert done < total_chunks
        assert load(http)["chunks_done"] - before == done


@pytest.mark.parametrize("body, status, code", [
    ({"text": SENTENCE, "format": "flac"}, 422, "unsupported_format"),
    ({"text": ""}, 422, "empty_text"),
    ({"text": SENTENCE, "voice": "nobody"}, 422, "unknown_voice"),
    ({"text": SENTENCE, "save": True}, 422, "invalid_request"),
])
def test_bad_stream_requests_fail_before_any_audio(client, body, status, code):
    response = client.post("/v1/tts/stream", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_stream_of_a_short_text_is_playable_wav(client):
    with client.stream("POST", "/v1/tts/stream", json={"text": SENTENCE, "format": "wav"}) as response:
        data = response.read()
    pcm = ffmpeg_decode(data)
    assert len(pcm) / RATE > 2
    assert len(data) == 44 + 2 * len(pcm)
