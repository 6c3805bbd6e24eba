"""API keys and rate limits on the real graph, with the real clients."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.helpers.audio import decode
from tests.integration.conftest import API_KEYS

pytestmark = pytest.mark.integration


def bearer(name: str) -> dict:
    return {"Authorization": f"Bearer {API_KEYS[name]}"}


@pytest.fixture()
def keyed(keyed_service):
    with httpx.Client(base_url=keyed_service.url, timeout=120) as http:
        yield http


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({}, "no API key"),
        ({"Authorization": "Bearer vg_wrong"}, "not valid"),
        ({"X-API-Key": "vg_wrong"}, "not valid"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "no API key"),
        (bearer("old"), "revoked"),
    ],
)
def test_requests_without_a_valid_key_are_refused(keyed, headers, words):
    response = keyed.post("/v1/tts", json={"text": "Hello."}, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key" and words in error["message"]
    assert "vg_" not in error["message"]


@pytest.mark.parametrize("headers", [bearer("app"), {"X-API-Key": API_KEYS["app"]}, {"authorization": f"bearer {API_KEYS['app']}"}])
def test_a_valid_key_in_either_header_speaks(keyed, headers):
    response = keyed.post("/v1/tts", json={"text": "Hello there."}, headers=headers)
    assert response.status_code == 200, response.text
    assert decode(response.content)[0].size > 0
    assert int(response.headers["x-ratelimit-limit-requests"]) == 100
    assert int(response.headers["x-ratelimit-remaining-characters"]) < 100_000


def test_every_api_needs_the_key_but_health_does_not(keyed):
    for method, path in [("GET", "/v1/voices"), ("GET", "/v1/tts/jobs/abc"), ("POST", "/run"), ("GET", "/status/abc"),
                         ("POST", "/v1/audio/speech"), ("GET", "/openapi.json")]:
        assert keyed.request(method, path).status_code == 401, path
    assert keyed.get("/health").status_code == 200
    # The docs page cannot send a key, so with public_docs off it is not served; the schema is, with a key.
    assert keyed.get("/docs").status_code == 404
    spec = keyed.get("/openapi.json", headers=bearer("app")).json()
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])


def test_openai_client_with_its_key_and_with_a_wrong_one(keyed_service):
    good = openai.OpenAI(base_url=f"{keyed_service.url}/v1", api_key=API_KEYS["app"], max_retries=0)
    audio = good.audio.speech.create(model="tts-1", voice="default", input="Hello from the client.", response_format="wav")
    assert decode(audio.read())[0].size > 0
    wrong = openai.OpenAI(base_url=f"{keyed_service.url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        wrong.audio.speech.create(model="tts-1", voice="default", input="Hello.")
    assert raised.value.body["code"] == "invalid_api_key"


def test_two_ingress_replicas_share_one_limit(keyed):
    replicas = {keyed.get("/health").json()["load"]["replica"] for _ in range(30)}
    assert len(replicas) == 2, replicas

    def list_voices(_):
        return keyed.get("/v1/voices", headers=bearer("tight"))

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(list_voices, range(16)))
    statuses = sorted(response.status_code for response in responses)
    # Per-replica buckets would admit up to 4 on each replica.
    assert statuses == [200] * 4 + [429] * 12, statuses
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in responses if r.status_code == 200)
    assert remaining == [0, 1, 2, 3]
    refused = next(r for r in responses if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"


def test_openai_client_over_its_limit_gets_its_rate_limit_error(keyed_service):
    # "tight" was spent by the test above or is spent here: its bucket refills one request per 100 s.
    client = openai.OpenAI(base_url=f"{keyed_service.url}/v1", api_key=API_KEYS["tight"], max_retries=0)
    with pytest.raises(openai.RateLimitError) as raised:
        for _ in range(5):
            client.audio.speech.create(model="tts-1", voice="default", input="Hi.", response_format="wav")
    assert int(raised.value.response.headers["retry-after"]) >= 1
    assert raised.value.body["code"] == "rate_limit_exceeded"


def test_characters_per_minute_are_counted_across_apis(keyed):
    text = "Word " * 50  # 250 characters; the key may send 400 a minute
    assert keyed.post("/v1/tts", json={"text": text}, headers=bearer("wordy")).status_code == 200
    response = keyed.post("/v1/tts/jobs", json={"text": text}, headers=bearer("wordy"))
    assert response.status_code == 429, response.text
    assert "characters" in response.json()["error"]["message"]
    # 100 characters short at 400 a minute: a wait of about 15 s.
    assert 10 <= int(response.headers["retry-after"]) <= 16
    assert int(response.headers["x-ratelimit-remaining-characters"]) < 250


def test_a_batch_longer_than_the_key_may_ever_send_is_refused_as_too_long(keyed):
    sections = [{"id": f"s{i}", "text": "Word " * 60} for i in range(2)]  # 600 characters > 400 a minute
    response = keyed.post("/run", json={"input": {"sections": sections}}, headers=bearer("wordy"))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "text_too_long"
