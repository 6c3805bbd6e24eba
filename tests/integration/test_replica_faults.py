"""A Synthesizer replica dies mid-request: Serve replaces it and its chunks go to another replica."""

import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from tests.helpers.local_serve import replicas
from tests.helpers.texts import long_text, service_chunks
from voicegraph.engines.espeak import EspeakEngine

pytestmark = pytest.mark.integration


def synthesizer_replicas() -> set[str]:
    return set(replicas("Synthesizer-espeak"))


def running_synthesizers() -> int:
    from ray import serve

    deployment = serve.status().applications["voicegraph"].deployments["Synthesizer-espeak"]
    return deployment.replica_states.get("RUNNING", 0)


def wait_until_chunks_are_under_way(client, pending: Future, done_before: int) -> int:
    """Once the request's chunks are out and the first is back, both replicas
    hold chunks: the moment to kill one, on a fast machine as on a slow one
    (a fixed sleep was too late where the whole text took under 1.5 s)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert not pending.done(), pending.result().text
        load = client.get("/health").json()["load"]
        if load["chunks_done"] > done_before and load["chunks_in_flight"] >= 4:
            return load["chunks_in_flight"]
        time.sleep(0.01)
    raise AssertionError("the request's chunks never got under way")


def test_a_killed_replica_is_replaced_and_its_chunks_resent(client):
    import ray

    before = synthesizer_replicas()
    assert len(before) == 2
    victim = sorted(before)[0]
    # Its own text: a response cache hit would finish before the kill.
    text = long_text(13_000, start=1)
    expected_chunks = service_chunks(text, EspeakEngine().info().chunk_chars_for("en-us"))
    done_before = client.get("/health").json()["load"]["chunks_done"]

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(client.post, "/v1/tts", json={"text": text, "save": True})
        wait_until_chunks_are_under_way(client, pending, done_before)
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        response = pending.result()

    assert response.status_code == 200, response.text
    chunks = response.json()["chunks"]
    assert [c["characters"] for c in chunks] == [len(c) for c in expected_chunks]
    assert all(c["duration_s"] > 0.3 for c in chunks)

    # Serve notices the death, starts a new replica in its place, and is back to two.
    deadline = time.monotonic() + 90
    while not (len(synthesizer_replicas() - before) == 1 and running_synthesizers() == 2):
        assert time.monotonic() < deadline, "Serve did not replace the killed replica"
        time.sleep(0.5)
    assert victim not in synthesizer_replicas()
