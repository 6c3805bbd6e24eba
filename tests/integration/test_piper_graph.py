"""Piper and eSpeak side by side in one graph over HTTP: each voice is spoken
by its engine, Piper's voices are loaded on demand and routed to replicas
that hold them (Serve model multiplexing)."""

import base64
import time

import httpx
import numpy as np
import openai
import pytest

from tests.helpers.audio import decode, ffmpeg_decode, speech_end_s, wav_bytes
from tests.helpers.jobs import finished, submit, wait_for_job
from tests.helpers.local_serve import synthesizer_replica_infos
from tests.helpers.texts import service_chunks
from voicegraph.engines.espeak import EspeakEngine

pytestmark = pytest.mark.integration

JOE = "piper/en_us-joe-medium"
SENTENCE = "The quick brown fox jumps over the lazy dog while the band plays on."
APP = "voicegraph-piper"
# A preset of each engine, and the rate its audio comes at.
VOICES = {"piper": (JOE, 22050), "espeak": ("espeak/deep", 22050)}


@pytest.fixture()
def piper(piper_service):
    with httpx.Client(base_url=piper_service.url, timeout=300) as http:
        yield http


def replica_infos(engine: str, replicas: int) -> dict[str, dict]:
    return synthesizer_replica_infos(APP, engine, replicas)


def chunks_done(engine: str, replicas: int) -> dict[str, int]:
    return {replica: info["chunks_done"] for replica, info in replica_infos(engine, replicas).items()}


def test_health_lists_every_engine_and_the_default_one(piper):
    body = piper.get("/health").json()
    assert (body["engine"], body["default_voice"], body["sample_rate"]) == ("piper", JOE, 22050)
    assert body["can_clone"] is True  # eSpeak can
    engines = {engine["engine"]: engine for engine in body["engines"]}
    assert list(engines) == ["piper", "espeak"]
    assert (engines["piper"]["voices"], engines["piper"]["can_clone"]) == (5, False)
    assert (engines["espeak"]["default_voice"], engines["espeak"]["can_clone"]) == ("espeak/default", True)


def test_voices_and_models_list_every_engine(piper):
    body = piper.get("/v1/voices").json()
    assert (body["engine"], body["default_voice"], body["default_language"]) == ("piper", JOE, "en-us")
    presets = {v["id"]: (v["engine"], v["language"], v["sample_rate"]) for v in body["voices"] if v["kind"] == "preset"}
    assert presets[JOE] == ("piper", "en-us", 22050)
    assert {"piper/en_us-a-medium", "piper/en_us-b-medium", "piper/en_us-c-medium", "espeak/deep"} <= set(presets)
    assert {engine["engine"]: engine["can_clone"] for engine in body["engines"]} == {"piper": False, "espeak": True}
    assert piper.get("/v1/voices/espeak/deep").json()["engine"] == "espeak"
    openai_voices = {v["id"] for v in piper.get("/v1/audio/voices").json()["voices"]}
    assert {JOE, "espeak/default"} <= openai_voices
    models = [model["id"] for model in piper.get("/v1/models").json()["data"]]
    assert models[:2] == ["piper", "espeak-ng-1.52"] and "tts-1-hd" in models


@pytest.mark.parametrize("engine", ["piper", "espeak"])
def test_each_voice_is_spoken_by_its_engine(piper, engine):
    voice, rate = VOICES[engine]
    other = "espeak" if engine == "piper" else "piper"
    before = {name: sum(chunks_done(name, 2 if name == "piper" else 1).values()) for name in VOICES}
    response = piper.post("/v1/tts", json={"text": SENTENCE, "voice": voice})
    assert response.status_code == 200, response.text
    assert response.headers["x-engine"] == engine
    pcm, got_rate = decode(response.content)
    assert got_rate == rate and 2.0 < len(pcm) / rate < 7.0
    after = {name: sum(chunks_done(name, 2 if name == "piper" else 1).values()) for name in VOICES}
    assert after[engine] - before[engine] == int(response.headers["x-chunk-count"])
    assert after[other] == before[other]


def test_bare_ids_are_accepted_where_one_engine_offers_them(piper):
    assert piper.post("/v1/tts", json={"text": "Hello.", "voice": "deep"}).headers["x-engine"] == "espeak"
    assert piper.post("/v1/tts", json={"text": "Hello.", "voice": "en_us-joe-medium"}).headers["x-engine"] == "piper"
    unknown = piper.post("/v1/tts", json={"text": "Hello.", "voice": "piper/deep"})
    assert unknown.status_code == 422 and "the piper engine has no voice 'deep'" in unknown.json()["error"]["message"]
    # No voice: the default voice of the engine asked for.
    assert piper.post("/v1/tts", json={"text": "Hello.", "engine": "espeak"}).headers["x-engine"] == "espeak"
    mixed = piper.post("/v1/tts", json={"text": "Hello.", "engine": "espeak", "voice": JOE})
    assert mixed.status_code == 422 and mixed.json()["error"]["code"] == "incompatible_voice"


@pytest.mark.parametrize("engine", ["piper", "espeak"])
def test_every_route_works_with_every_engine(piper, piper_service, engine):
    voice, rate = VOICES[engine]
    text = " ".join([SENTENCE] * 8)  # several chunks
    whole = piper.post("/v1/tts", json={"text": text, "voice": voice, "format": "pcm"})
    assert whole.status_code == 200 and whole.headers["x-engine"] == engine
    with piper.stream("POST", "/v1/tts/stream", json={"text": text, "voice": voice, "format": "pcm"}) as response:
        assert response.status_code == 200 and response.headers["x-engine"] == engine
        assert response.headers["content-type"] == f"audio/L16; rate={rate}; channels=1"
        streamed = b"".join(response.iter_bytes())
    # VITS samples its phoneme durations, so two runs of a text differ by a few percent.
    assert len(streamed) == pytest.approx(len(whole.content), rel=0.05)
    captioned = piper.post("/v1/tts", json={"text": text, "voice": voice, "captions": "json"}).json()
    audio, got_rate = decode(base64.b64decode(captioned["audio_base64"]))
    assert captioned["captions"][-1]["end"] == pytest.approx(len(audio) / got_rate, abs=0.0015)
    job = submit(piper, text=SENTENCE, voice=voice)
    status = wait_for_job(piper, job["job_id"], finished)
    assert status["status"] == "succeeded" and status["voice_id"] == voice, status
    with openai.OpenAI(base_url=f"{piper_service.url}/v1", api_key="unused", max_retries=0) as client:
        spoken = client.audio.speech.with_raw_response.create(model="tts-1", voice=voice, input=SENTENCE)
    assert spoken.headers["x-engine"] == engine and 2.0 < len(ffmpeg_decode(spoken.content)) / rate < 7.5


@pytest.mark.parametrize("model, engine", [("tts-1", "piper"), ("tts-1-hd", "espeak")])
def test_openai_clients_get_speech_from_the_mapped_engines(piper_service, model, engine):
    with openai.OpenAI(base_url=f"{piper_service.url}/v1", api_key="unused", max_retries=0) as client:
        response = client.audio.speech.with_raw_response.create(
            model=model, voice="alloy", input=SENTENCE, response_format="wav"
        )
    assert response.headers["x-engine"] == engine
    pcm, rate = decode(response.content)
    assert 2.0 < len(pcm) / rate < 7.5


def test_a_long_text_fans_out_over_both_replicas(piper):
    before = chunks_done("piper", 2)
    text = " ".join([SENTENCE] * 30)  # 2,069 characters
    response = piper.post("/v1/tts", json={"text": text, "format": "pcm"})
    assert response.status_code == 200, response.text
    chunks = int(response.headers["x-chunk-count"])
    # Two sentences a chunk, but the first chunk (at most first_chunk_chars) holds one.
    assert chunks == len(service_chunks(text, 200)) == 16
    after = chunks_done("piper", 2)
    done = {replica: after[replica] - before.get(replica, 0) for replica in after}
    assert len(done) == 2 and sum(done.values()) == chunks and min(done.values()) >= 1, done


def say(piper, voice: str) -> np.ndarray:
    response = piper.post("/v1/tts", json={"text": SENTENCE, "voice": voice})
    assert response.status_code == 200, response.text
    return decode(response.content)[0]


def held(voice: str) -> set[str]:
    """The piper replicas that hold `voice`'s model."""
    key = voice.removeprefix("piper/")
    return {replica for replica, info in replica_infos("piper", 2).items() if key in info["voice_models"]}


def test_a_voice_is_routed_to_the_replica_that_holds_it(piper):
    say(piper, "piper/en_us-b-medium")
    (holder,) = held("piper/en_us-b-medium")
    time.sleep(2)  # the routers learn which replica holds what from Serve's controller
    before = chunks_done("piper", 2)
    for _ in range(6):
        say(piper, "piper/en_us-b-medium")
    after = chunks_done("piper", 2)
    moved = {replica: after[replica] - before[replica] for replica in after}
    assert moved[holder] == 6 and sum(moved.values()) == 6, moved
    assert held("piper/en_us-b-medium") == {holder}


def test_replicas_hold_at_most_their_limit_and_a_reloaded_voice_says_the_same(piper):
    first = say(piper, "piper/en_us-a-medium")
    # Four other voices in the four places two replicas have: until no replica holds a any more.
    for _ in range(10):
        for voice in ("piper/en_us-b-medium", "piper/en_us-c-medium", "piper/en_us-d-medium", JOE):
            say(piper, voice)
            assert all(len(info["voice_models"]) <= 2 for info in replica_infos("piper", 2).values())
        if not held("piper/en_us-a-medium"):
            break
    assert not held("piper/en_us-a-medium"), "no replica let go of voice a"
    again = say(piper, "piper/en_us-a-medium")
    np.testing.assert_array_equal(first, again)
    evictions = sum(info["voice_evictions"] for info in replica_infos("piper", 2).values())
    assert evictions >= 1


def test_a_language_the_voice_does_not_speak_is_refused(piper):
    response = piper.post("/v1/tts", json={"text": "Hallo Welt.", "voice": JOE, "language": "de"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unsupported_language"


def test_a_clone_is_refused_by_piper_and_made_by_espeak(piper, reference_server):
    reference = wav_bytes(EspeakEngine().synthesize(SENTENCE * 2, "deep", "en-us", 1.0), 22050)
    refused = piper.post("/v1/voices", files={"file": ("r.wav", reference)}, data={"name": "Mine", "engine": "piper"})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "cloning_unsupported" and "send engine espeak" in error["message"]
    url = reference_server.publish("/piper-ref.wav", reference, '"p1"')
    downloads = reference_server.full_downloads
    spoken = piper.post("/v1/tts", json={"text": "Hello.", "voice_url": url, "engine": "piper"})
    assert spoken.status_code == 422 and spoken.json()["error"]["code"] == "cloning_unsupported"
    assert reference_server.full_downloads == downloads  # refused before anything was fetched
    # Without an engine: the first that can clone makes it, and speaks it.
    created = piper.post("/v1/voices", files={"file": ("r.wav", reference)}, data={"name": "Side by side"})
    assert created.status_code == 201, created.text
    assert created.json()["engine"] == "espeak"
    response = piper.post("/v1/tts", json={"text": "Hello.", "voice": created.json()["id"]})
    assert response.status_code == 200 and response.headers["x-engine"] == "espeak"
    from_url = piper.post("/v1/tts", json={"text": "Hello.", "voice_url": url})
    assert from_url.status_code == 200 and from_url.headers["x-engine"] == "espeak"


WRITTEN = "We meet at 7:45 a.m. on Jan. 5th, 2027. The quick brown fox jumps over the lazy dog, twice! Then we leave."


@pytest.mark.parametrize("engine", ["piper", "espeak"])
def test_captions_time_each_word_as_written(piper, engine):
    voice, _ = VOICES[engine]
    response = piper.post("/v1/tts", json={"text": WRITTEN, "voice": voice, "captions": "json"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["words_estimated"] is False  # the engine's own times
    pcm, rate = decode(base64.b64decode(body["audio_base64"]))
    captions = body["captions"]
    # The text as the user wrote it, not as it was spoken ("seven forty-five a m").
    assert [c["text"] for c in captions] == [
        "We meet at 7:45 a.m. on Jan. 5th, 2027.", "The quick brown fox jumps over the lazy dog, twice!", "Then we leave."
    ]
    for caption in captions:
        words = caption["words"]
        assert [w["word"] for w in words] == caption["text"].split()
        assert all(caption["start"] <= w["start"] <= w["end"] <= caption["end"] for w in words), caption
        assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:])), caption  # ordered
    assert all(a["end"] <= b["start"] for a, b in zip(captions, captions[1:]))
    last_word = captions[-1]["words"][-1]
    assert last_word["end"] == pytest.approx(speech_end_s(pcm, rate), abs=0.05)
    # "7:45" takes longer to say ("seven forty-five") than "at".
    first = {w["word"]: w["end"] - w["start"] for w in captions[0]["words"]}
    assert first["7:45"] > first["at"]
