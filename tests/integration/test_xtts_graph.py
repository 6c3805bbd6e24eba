"""Engine xtts through the real Serve graph over HTTP, on a tiny random checkpoint."""

import time

import httpx
import numpy as np
import pytest
from ray import serve
from ray.serve.exceptions import RequestCancelledError

from tests.helpers.audio import decode
from tests.helpers.texts import service_chunks
from voicegraph.engines.base import Sampling

pytestmark = pytest.mark.integration


@pytest.fixture()
def xtts(xtts_service):
    with httpx.Client(base_url=xtts_service.url, timeout=300) as http:
        yield http


def test_health_names_engine_model_and_torch(xtts, tiny_xtts_dir):
    body = xtts.get("/health").json()
    assert (body["engine"], body["model"], body["sample_rate"]) == ("xtts", tiny_xtts_dir.name, 24000)
    assert body["torch_version"].startswith("2.")


def test_voices_come_from_the_speakers_file_and_the_configured_clips(xtts):
    body = xtts.get("/v1/voices").json()
    assert [v["id"] for v in body["voices"]] == ["Tiny Narrator", "narrator"]
    assert body["default_language"] == "en" and "de" in body["languages"]


def test_tts_returns_audio_made_by_the_model(xtts):
    text = "Hello there. This is the second sentence, spoken by the model."
    response = xtts.post(
        "/v1/tts",
        json={"text": text, "language": "en-us", "sampling": {"temperature": 0.5, "top_k": 20}},
    )
    assert response.status_code == 200, response.text
    pcm, rate = decode(response.content)
    assert rate == 24000
    assert len(pcm) / rate == pytest.approx(float(response.headers["x-audio-duration"]), abs=0.01)
    assert len(pcm) > 0.2 * rate and pcm.std() > 0.001  # random weights: noise, but real output


def test_long_text_uses_xtts_sized_chunks(xtts):
    text = " ".join(["A short sentence about nothing much."] * 20)  # 739 characters
    response = xtts.post("/v1/tts", json={"text": text, "format": "pcm"})
    assert response.status_code == 200, response.text
    # 250-character English chunks, the first one short (first_chunk_chars).
    assert int(response.headers["x-chunk-count"]) == len(service_chunks(text, 250, "en")) == 5


@pytest.mark.parametrize(
    "sampling, field",
    [({"temperature": 0}, "temperature"), ({"top_p": 1.5}, "top_p"), ({"top_k": 0}, "top_k"), ({"seed": 1}, "seed")],
)
def test_sampling_out_of_bounds_is_a_422(xtts, sampling, field):
    response = xtts.post("/v1/tts", json={"text": "Hi.", "sampling": sampling})
    assert response.status_code == 422
    assert field in response.json()["error"]["message"]


def test_clone_speak_and_manage_a_voice_on_xtts(xtts, client, xtts_service, service):
    from tests.helpers.audio import wav_bytes
    from voicegraph.engines.espeak import EspeakEngine

    reading = "This is a recording of my speaking voice. I read a few plain sentences, slowly and clearly."
    reference = wav_bytes(EspeakEngine().synthesize(reading, "bright", "en-us", 1.0), 22050)
    created = xtts.post("/v1/voices", files={"file": ("me.wav", reference)}, data={"name": "Model Clone"})
    assert created.status_code == 201, created.text
    profile = created.json()
    assert (profile["id"], profile["engine"], profile["method"]) == ("model_clone", "xtts", "xtts-conditioning")
    assert profile["language"] == "en"

    spoken = xtts.post("/v1/tts", json={"text": "Hello from the clone.", "voice": "model_clone"})
    assert spoken.status_code == 200, spoken.text
    pcm, rate = decode(spoken.content)
    assert rate == 24000 and len(pcm) > 0.2 * rate
    sample, rate = decode(xtts.get("/v1/voices/model_clone/sample").content)
    assert rate == 24000 and len(sample) > 0.2 * rate
    assert "model_clone" in {v["id"] for v in xtts.get("/v1/voices").json()["voices"]}

    # The same profile in the eSpeak service's storage: listed as unusable, refused for speech.
    for suffix in ("npy", "json"):
        key = f"voice_profiles/voice_model_clone.{suffix}"
        (service.storage_root / key).parent.mkdir(parents=True, exist_ok=True)
        (service.storage_root / key).write_bytes((xtts_service.storage_root / key).read_bytes())
    listed = {v["id"]: v for v in client.get("/v1/voices").json()["voices"]}
    assert listed["model_clone"]["usable"] is False
    refused = client.post("/v1/tts", json={"text": "Hi.", "voice": "model_clone"})
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "incompatible_voice"
    assert "clone it again" in refused.json()["error"]["message"]

    assert xtts.delete("/v1/voices/model_clone").status_code == 200
    assert xtts.post("/v1/tts", json={"text": "Hi.", "voice": "model_clone"}).status_code == 422
    # Any service can delete a profile, whichever engine made it.
    assert client.delete("/v1/voices/model_clone").status_code == 200


def test_xtts_streams_through_the_graph(xtts):
    text = " ".join(["A short sentence about nothing much."] * 10)  # two XTTS chunks
    with xtts.stream("POST", "/v1/tts/stream", json={"text": text, "format": "pcm"}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"] == "audio/L16; rate=24000; channels=1"
        data = response.read()
    pcm = np.frombuffer(data, dtype="<i2")
    pause = int(24000 * 0.180)
    assert len(pcm) > pause + 0.4 * 24000  # two chunks of model output and the pause between
    assert np.abs(pcm).max() > 0


def test_concurrent_chunks_are_decoded_together_and_each_sounds_as_alone(xtts):
    synthesizer = serve.get_deployment_handle("Synthesizer-xtts", "voicegraph-xtts")
    greedy = Sampling(top_k=1)  # the most likely token: the same audio each time
    texts = ["Hello there.", "A longer sentence, spoken by the tiny model.", "Short.", "One more chunk to speak."]
    one_by_one = [synthesizer.synthesize.remote(text, "Tiny Narrator", "en", 1.0, greedy).result() for text in texts]
    before = synthesizer.replica_info.remote().result()
    calls = [synthesizer.synthesize.remote(text, "Tiny Narrator", "en", 1.0, greedy) for text in texts]
    together = [call.result() for call in calls]
    after = synthesizer.replica_info.remote().result()
    assert after["max_batch_size"] == 8
    assert after["chunks_done"] - before["chunks_done"] == len(texts)
    assert after["batches_done"] - before["batches_done"] < len(texts)  # some were decoded together
    for batched, alone in zip(together, one_by_one):
        assert batched.dtype == np.int16 and len(batched) == len(alone)
        np.testing.assert_allclose(batched, alone, atol=4)  # int16: a few steps of rounding


def test_a_chunk_cancelled_mid_batch_leaves_the_others_whole(xtts):
    """One caller leaves while its chunk is being decoded with others, and
    another while its chunk still waits for the next batch: the batch's other
    chunks sound as they do alone, and the waiting chunk is never decoded."""
    synthesizer = serve.get_deployment_handle("Synthesizer-xtts", "voicegraph-xtts")
    greedy = Sampling(top_k=1)
    sentence = "A longer sentence, spoken by the tiny model, so that the batch takes a while to decode."
    texts = [sentence, sentence.upper(), "Short.", sentence[:40]]
    alone = [synthesizer.synthesize.remote(text, "Tiny Narrator", "en", 1.0, greedy).result() for text in texts]
    before = synthesizer.replica_info.remote().result()
    calls = [synthesizer.synthesize.remote(text, "Tiny Narrator", "en", 1.0, greedy) for text in texts]
    while synthesizer.replica_info.remote().result()["batches_done"] == before["batches_done"]:
        time.sleep(0.005)
    waiting = synthesizer.synthesize.remote("Never to be spoken.", "Tiny Narrator", "en", 1.0, greedy)
    time.sleep(0.05)  # in the replica's batch queue, behind the batch under way
    calls[1].cancel()
    waiting.cancel()
    with pytest.raises(RequestCancelledError):
        calls[1].result()  # had it returned, the cancellation came after the batch: no test
    with pytest.raises(RequestCancelledError):
        waiting.result()
    for index in (0, 2, 3):
        np.testing.assert_allclose(calls[index].result(), alone[index], atol=4)
    time.sleep(1.0)  # a batch that had taken the waiting chunk would be done by now
    after = synthesizer.replica_info.remote().result()
    # The cancelled chunk's sequence is decoded with its batch (one sequence
    # cannot leave a running generation); the waiting one never is.
    assert after["chunks_done"] - before["chunks_done"] == len(texts)


def test_streams_join_batches_like_any_other_chunk(xtts, xtts_service):
    """An HTTP stream's first chunk goes out in pieces as it is generated, the
    first chunks of concurrent streams decoded together as one batch of
    streams; the rest of each text goes through the batched whole-chunk call
    as /v1/tts does."""
    from concurrent.futures import ThreadPoolExecutor

    synthesizer = serve.get_deployment_handle("Synthesizer-xtts", "voicegraph-xtts")
    texts = [" ".join([f"Stream {n} has a short sentence about nothing much."] * 6) for n in range(3)]

    def stream(text):
        with httpx.Client(base_url=xtts_service.url, timeout=300) as http:
            with http.stream("POST", "/v1/tts/stream", json={"text": text, "format": "pcm"}) as response:
                assert response.status_code == 200, response.read()
                return len(response.read())

    before = synthesizer.replica_info.remote().result()
    with ThreadPoolExecutor(len(texts)) as pool:
        sizes = list(pool.map(stream, texts))
    after = synthesizer.replica_info.remote().result()
    done = {key: after[key] - before[key] for key in ("chunks_done", "batches_done", "stream_batches_done", "pieces_done")}
    assert all(size > 0 for size in sizes)
    assert done["chunks_done"] >= 2 * len(texts)
    # Each stream's first chunk came in several pieces, some streams' together.
    assert done["pieces_done"] > 2 * len(texts)
    assert 1 <= done["stream_batches_done"] < len(texts)
    # The other chunks were decoded in batches too.
    assert done["batches_done"] < done["chunks_done"] - len(texts)


def test_a_chunk_streamed_in_pieces_is_the_chunk_the_synthesizer_speaks_whole(xtts):
    synthesizer = serve.get_deployment_handle("Synthesizer-xtts", "voicegraph-xtts")
    greedy = Sampling(top_k=1)
    text = "A sentence spoken in pieces, then whole."
    whole = synthesizer.synthesize.remote(text, "Tiny Narrator", "en", 1.0, greedy).result()
    pieces = list(synthesizer.options(stream=True).synthesize_pieces.remote(text, "Tiny Narrator", "en", 1.0, greedy))
    assert len(pieces) > 1 and all(piece.dtype == np.int16 for piece in pieces)
    joined = np.concatenate(pieces).astype(np.int32)
    assert len(joined) == len(whole) and np.abs(joined - whole).max() <= 1
