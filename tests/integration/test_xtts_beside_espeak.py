"""XTTS (the tiny checkpoint) and eSpeak side by side in one application:
each voice goes to its engine's replicas, OpenAI's tts-1-hd reaches XTTS,
each engine clones its own kind of voice, and requests to the two engines at
once are stitched, streamed and run as jobs each by its own engine."""

import base64
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.helpers.audio import decode, wav_bytes
from tests.helpers.jobs import finished, submit, wait_for_job
from tests.helpers.local_serve import PATIENT_ADMISSION, Service, synthesizer_replica_infos
from tests.helpers.xtts import tiny_xtts_settings
from voicegraph.engines.espeak import EspeakEngine

pytestmark = pytest.mark.integration

APP = "voicegraph-xtts-espeak"
SENTENCE = "The quick brown fox jumps over the lazy dog."
# A voice of each engine, and the rate its audio comes at.
VOICES = {"xtts": ("xtts/narrator", 24000), "espeak": ("espeak/deep", 22050)}


@pytest.fixture(scope="module")
def mixed_service(service, tiny_xtts_dir, reference_clip, tmp_path_factory) -> Service:
    from ray import serve

    from serve_app.app import build_app

    settings = tiny_xtts_settings(
        tiny_xtts_dir,
        reference_clip,
        engines=["espeak", "xtts"],
        storage_root=tmp_path_factory.mktemp("xtts-espeak-storage"),
        synthesizer={"min_replicas": 1, "max_replicas": 1, "num_cpus": 0.25},
        admission=PATIENT_ADMISSION,
    )
    serve.run(build_app(settings), name=APP, route_prefix="/xtts-espeak")
    yield Service(f"{service.url}/xtts-espeak", settings.storage_root, settings)
    serve.delete(APP)


@pytest.fixture()
def mixed(mixed_service):
    with httpx.Client(base_url=mixed_service.url, timeout=300) as http:
        yield http


def chunks_done(engine: str) -> int:
    (info,) = synthesizer_replica_infos(APP, engine, 1).values()
    assert info["engine"] == engine
    return info["chunks_done"]


def test_health_and_voices_list_both_engines(mixed):
    health = mixed.get("/health").json()
    engines = {engine["engine"]: engine for engine in health["engines"]}
    # Admission waits per engine: each has its own Synthesizers.
    assert set(health["load"]["queue_wait_s"]) == {"espeak", "xtts"}
    assert list(engines) == ["espeak", "xtts"]
    assert engines["xtts"]["default_voice"].startswith("xtts/") and engines["xtts"]["sample_rate"] == 24000
    assert engines["xtts"]["can_clone"] and engines["espeak"]["can_clone"]
    voices = {v["id"]: v["engine"] for v in mixed.get("/v1/voices").json()["voices"]}
    assert voices["xtts/narrator"] == "xtts" and voices["espeak/deep"] == "espeak"


@pytest.mark.parametrize("engine", ["xtts", "espeak"])
def test_each_voice_is_spoken_by_its_engines_replica(mixed, engine):
    voice, rate = VOICES[engine]
    other = "espeak" if engine == "xtts" else "xtts"
    before = {name: chunks_done(name) for name in VOICES}
    response = mixed.post("/v1/tts", json={"text": SENTENCE, "voice": voice})
    assert response.status_code == 200, response.text
    assert response.headers["x-engine"] == engine
    pcm, got_rate = decode(response.content)
    assert got_rate == rate and len(pcm) > 0.2 * rate
    assert chunks_done(engine) - before[engine] == int(response.headers["x-chunk-count"])
    assert chunks_done(other) == before[other]


@pytest.mark.parametrize(("model", "engine", "rate"), [("tts-1", "espeak", 22050), ("tts-1-hd", "xtts", 24000)])
def test_openai_clients_get_speech_from_the_mapped_engines(mixed_service, model, engine, rate):
    # alloy maps to an XTTS speaker the tiny model lacks: its default voice speaks.
    with openai.OpenAI(base_url=f"{mixed_service.url}/v1", api_key="unused", max_retries=0) as client:
        response = client.audio.speech.with_raw_response.create(
            model=model, voice="alloy", input=SENTENCE, response_format="wav"
        )
    assert response.headers["x-engine"] == engine
    pcm, got_rate = decode(response.content)
    assert got_rate == rate and len(pcm) > 0.2 * rate


def test_each_engine_clones_its_own_kind_of_voice(mixed):
    reference = wav_bytes(EspeakEngine().synthesize(SENTENCE * 2, "bright", "en-us", 1.0), 22050)
    made = {}
    for engine, method in (("xtts", "xtts-conditioning"), ("espeak", "espeak-parametric")):
        created = mixed.post(
            "/v1/voices", files={"file": ("r.wav", reference)}, data={"name": f"Mine {engine}", "engine": engine}
        )
        assert created.status_code == 201, created.text
        assert (created.json()["engine"], created.json()["method"]) == (engine, method)
        made[engine] = created.json()["id"]
    for engine, voice in made.items():
        response = mixed.post("/v1/tts", json={"text": "Hello.", "voice": voice})
        assert response.status_code == 200 and response.headers["x-engine"] == engine
        assert decode(response.content)[1] == VOICES[engine][1]
    # A clone belongs to the engine that made it.
    wrong = mixed.post("/v1/tts", json={"text": "Hello.", "voice": made["xtts"], "engine": "espeak"})
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "incompatible_voice"
    for voice in made.values():
        assert mixed.delete(f"/v1/voices/{voice}").status_code == 200


def test_requests_to_both_engines_at_once_are_each_whole_and_their_own(mixed):
    """A long text, a stream, captions and a job to each engine, all at once:
    every answer comes from the engine its voice names, at its rate, whole."""
    text = " ".join([SENTENCE] * 10)  # several chunks on either engine

    def whole(engine):
        voice, rate = VOICES[engine]
        response = mixed.post("/v1/tts", json={"text": text, "voice": voice, "format": "pcm"})
        assert response.status_code == 200 and response.headers["x-engine"] == engine, response.text
        return engine, int(response.headers["x-chunk-count"]), len(response.content) / 2 / rate

    def streamed(engine):
        voice, rate = VOICES[engine]
        with mixed.stream("POST", "/v1/tts/stream", json={"text": text, "voice": voice, "format": "pcm"}) as response:
            assert response.status_code == 200 and response.headers["x-engine"] == engine, response.read()
            assert response.headers["content-type"] == f"audio/L16; rate={rate}; channels=1"
            return engine, len(b"".join(response.iter_bytes())) / 2 / rate

    def captioned(engine):
        voice, rate = VOICES[engine]
        body = mixed.post("/v1/tts", json={"text": text, "voice": voice, "captions": "json"}).json()
        audio, got_rate = decode(base64.b64decode(body["audio_base64"]))
        assert got_rate == rate
        assert body["captions"][-1]["end"] == pytest.approx(len(audio) / rate, abs=0.0015)
        return engine

    def job(engine):
        voice, _ = VOICES[engine]
        status = wait_for_job(mixed, submit(mixed, text=SENTENCE, voice=voice)["job_id"], finished)
        assert status["status"] == "succeeded" and status["voice_id"] == voice, status
        return engine

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(work, engine) for work in (whole, streamed, captioned, job) for engine in VOICES]
        results = [future.result() for future in futures]
    wholes = {engine: (chunks, seconds) for engine, chunks, seconds in results[:2]}
    streams = dict(results[2:4])
    assert all(chunks >= 2 and seconds > 0.5 for chunks, seconds in wholes.values()), wholes
    # eSpeak says a text the same way each time; the tiny XTTS samples random
    # weights, so its stream is only known to be audio.
    assert streams["espeak"] == pytest.approx(wholes["espeak"][1], rel=0.01)
    assert streams["xtts"] > 0.2
    assert results[4:] == ["xtts", "espeak", "xtts", "espeak"]
