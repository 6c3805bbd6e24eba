"""The serverless-handler routes over HTTP on the real graph: a client of the
old handler changes its base URL and keeps its `{"input": …}` bodies."""

import base64
import time

import pytest

from tests.helpers.audio import decode, wav_bytes
from tests.helpers.texts import long_text
from voicegraph.engines.espeak import EspeakEngine

pytestmark = pytest.mark.integration

SENTENCE = "Migration is only a change of base address for the old clients."


def wait_for_run(client, run_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/status/{run_id}")
        assert response.status_code == 200, response.text
        status = response.json()
        if status["status"] in ("COMPLETED", "FAILED"):
            return status
        assert time.monotonic() < deadline, f"run never finished: {status}"
        time.sleep(0.1)


def audio_of(output: dict) -> bytes:
    return base64.b64decode(output["audio_base64"])


def test_runsync_simple_mode_returns_base64_audio_and_version_info(client):
    response = client.post(
        "/runsync", json={"input": {"text": SENTENCE, "voice_id": "bright", "language": "en-us", "format": "mp3"}}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"].startswith("run_") and body["status"] == "COMPLETED"
    output = body["output"]
    health = client.get("/health").json()
    for field in ("git_sha", "build_time", "torch_version"):
        assert output[field] == health[field]
    assert output["handler_version"] == health["app_version"]
    assert output["delivery"] == "base64" and "delivery_note" not in output
    data = audio_of(output)
    assert len(data) == output["size_bytes"] and output["content_type"] == "audio/mpeg"
    samples, rate = decode(data)
    assert len(samples) / rate == pytest.approx(output["duration_s"], abs=0.1)
    # The same request on the native API speaks the same audio.
    native = client.post("/v1/tts", json={"text": SENTENCE, "voice": "bright", "format": "mp3"})
    assert native.status_code == 200
    assert decode(native.content)[0].shape == samples.shape
    # The stored file and the service's download link hold the same bytes.
    assert client.get(output["download_url"]).content == data


def test_run_then_status_with_url_delivery(client, service):
    response = client.post("/run", json={"input": {"text": long_text(800), "delivery": "url"}})
    assert response.status_code == 200, response.text
    queued = response.json()
    assert queued["status"] in ("IN_QUEUE", "IN_PROGRESS") and "output" not in queued
    status = wait_for_run(client, queued["id"])
    assert status["status"] == "COMPLETED"
    output = status["output"]
    assert output["delivery"] == "url" and "audio_base64" not in output
    assert output["audio_path"].startswith("tts_generations/TTS_voice_default_")
    stored = (service.storage_root / output["audio_path"]).read_bytes()
    assert client.get(output["download_url"]).content == stored
    assert output["audio_url"] == (service.storage_root / output["audio_path"]).resolve().as_uri()


def test_batch_mode_returns_one_audio_per_section_in_order(client):
    sections = [
        {"id": "intro", "text": "A short opening line."},
        {"id": "body", "text": long_text(300), "voice_id": "deep"},
        {"id": "outro", "text": "And that is the end of the story, thank you for listening."},
    ]
    response = client.post(
        "/runsync", json={"input": {"sections": sections, "voice_id": "bright", "format": "wav"}}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "COMPLETED"
    output = body["output"]
    assert output["git_sha"] and output["handler_version"]
    assert [section["id"] for section in output["sections"]] == ["intro", "body", "outro"]
    durations = []
    for given, section in zip(sections, output["sections"], strict=True):
        assert section["status"] == "succeeded"
        data = audio_of(section["audio"])
        samples, rate = decode(data)
        durations.append(len(samples) / rate)
        assert durations[-1] == pytest.approx(section["audio"]["duration_s"], abs=0.05)
        # Each section is the audio /v1/tts makes for its text and voice.
        voice = given.get("voice_id", "bright")
        native = client.post("/v1/tts", json={"text": given["text"], "voice": voice, "format": "wav"})
        assert decode(native.content)[0].shape == samples.shape
    assert durations[0] < durations[2] < durations[1]


def test_base64_over_the_limit_comes_as_url(client, service):
    limit = service.settings.serverless.max_base64_bytes
    response = client.post("/runsync", json={"input": {"text": long_text(1500), "format": "wav"}})
    assert response.status_code == 200, response.text
    output = response.json()["output"]
    assert output["size_bytes"] > limit
    assert output["delivery"] == "url" and "audio_base64" not in output
    assert str(limit) in output["delivery_note"]
    assert len(client.get(output["download_url"]).content) == output["size_bytes"]


def test_batch_with_a_failing_section_fails_and_keeps_the_others(client, reference_server):
    # The reference answers once (the check when the run is submitted) and is
    # gone when the section runs.
    reference = EspeakEngine().synthesize(SENTENCE * 2, "deep", "en-us", 1.0)
    url = reference_server.publish("/run-expiring.wav", wav_bytes(reference, 22050), '"run-1"', requests=1)
    sections = [
        {"id": "ok-1", "text": "This section speaks."},
        {"id": "gone", "text": "This one needs the reference.", "voice_url": url},
        {"id": "ok-2", "text": "So does this one, in the default voice."},
    ]
    response = client.post("/run", json={"input": {"sections": sections, "delivery": "url"}})
    assert response.status_code == 200, response.text
    status = wait_for_run(client, response.json()["id"])
    assert status["status"] == "FAILED"
    assert status["error_code"] == "url_unreachable" and status["error"].startswith("section 'gone': ")
    by_id = {section["id"]: section for section in status["output"]["sections"]}
    assert by_id["gone"]["status"] == "failed" and "audio" not in by_id["gone"]
    for section_id in ("ok-1", "ok-2"):
        assert by_id[section_id]["status"] == "succeeded"
        assert client.get(by_id[section_id]["audio"]["download_url"]).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"input": {}}, 422, "exactly one of them"),
        ({"input": {"text": "Hi.", "sections": [{"id": "a", "text": "Hi."}]}}, 422, "exactly one of them"),
        ({"input": {"sections": []}}, 422, "at least one"),
        ({"input": {"sections": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]}}, 422, "repeated: a"),
        ({"input": {"sections": [{"text": "no id"}]}}, 422, "sections.0.id"),
        (
            {"input": {"sections": [{"id": "a", "text": "x"}], "callback_url": "https://example.com/cb"}},
            422,
            "simple mode",
        ),
        ({"input": {"text": "Hi."}, "webhook": "https://example.com/hook"}, 422, "callback_url"),
        ({"input": {"text": "Hi.", "voise_id": "bright"}}, 422, "voise_id"),
        ({"input": {"text": "Hi.", "delivery": "email"}}, 422, "delivery"),
        ({"input": {"text": "   "}}, 422, "empty"),
        ({"input": {"text": "Hi.", "voice_id": "nobody"}}, 422, "'nobody' does not exist"),
        ({"input": {"text": "Hi.", "callback_url": "ftp://example.com/cb"}}, 422, "callback_url"),
        (
            {"input": {"sections": [{"id": "a", "text": "Fine."}, {"id": "b", "text": "Hi.", "voice_id": "nobody"}]}},
            422,
            "sections[1] (id 'b')",
        ),
        ({"input": {"sections": [{"id": str(i), "text": "x"} for i in range(101)]}}, 422, "limit is 100"),
        ({"text": "Hi."}, 422, "input"),
    ],
)
def test_bad_runs_are_refused_before_anything_is_queued(client, body, status, words):
    response = client.post("/run", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert words in error["message"], error


def test_batch_sections_carry_captions(client):
    sections = [{"id": "one", "text": "First sentence here. And a second one."}, {"id": "two", "text": "Only one."}]
    response = client.post("/runsync", json={"input": {"sections": sections, "captions": "json"}})
    assert response.status_code == 200, response.text
    for section, texts in zip(
        response.json()["output"]["sections"], [["First sentence here.", "And a second one."], ["Only one."]], strict=True
    ):
        captions = section["audio"]["captions"]
        assert [cue["text"] for cue in captions] == texts
        samples, rate = decode(audio_of(section["audio"]))
        assert captions[-1]["end"] == pytest.approx(len(samples) / rate, abs=0.0015)
