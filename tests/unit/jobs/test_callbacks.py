"""voicegraph.jobs.callbacks; deliveries go to a real local CallbackReceiver."""

from __future__ import annotations

import json
import threading

import pytest
from pydantic import ValidationError

from tests.helpers.callback_receiver import CallbackReceiver
from voicegraph.jobs.callbacks import (
    ATTEMPT_HEADER,
    EVENT_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ErrorCallback,
    SuccessCallback,
    deliver,
    delivery_headers,
    error_callback_url,
    sign,
    verify,
)
from voicegraph.net.safe_fetch import AllowList

SECRET = "whsec_test"
NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("success", "error"),
    [
        ("https://app.test/api/tts/callback", "https://app.test/api/tts/error-callback"),
        ("https://app.test/api/tts/done", "https://app.test/api/tts/error-callback"),
        ("https://app.test/api/tts/callback/", "https://app.test/api/tts/error-callback"),
        ("https://app.test/v2/api/tts/callback", "https://app.test/v2/api/tts/error-callback"),
        ("https://app.test/api/tts/jobs/42/done", "https://app.test/api/tts/error-callback"),
        ("https://app.test/api/tts/", "https://app.test/api/tts/error-callback"),
        ("https://app.test/api/ttsx/callback", "https://app.test/api/ttsx/callback/error-callback"),
        ("https://app.test/API/TTS/callback", "https://app.test/API/TTS/callback/error-callback"),
        ("https://app.test/webhook", "https://app.test/webhook/error-callback"),
        ("https://app.test/webhook/", "https://app.test/webhook/error-callback"),
        ("https://app.test", "https://app.test/error-callback"),
        ("https://app.test/", "https://app.test/error-callback"),
        (
            "https://app.test/api/tts/callback?token=abc&x=1",
            "https://app.test/api/tts/error-callback?token=abc&x=1",
        ),
        ("https://app.test/hook?token=abc", "https://app.test/hook/error-callback?token=abc"),
        ("https://app.test/hook#section", "https://app.test/hook/error-callback"),
        ("https://app.test:8443/api/tts/callback", "https://app.test:8443/api/tts/error-callback"),
        ("http://10.0.0.5:8080/hooks/tts", "http://10.0.0.5:8080/hooks/tts/error-callback"),
    ],
)
def test_error_callback_url(success, error):
    assert error_callback_url(success) == error


def test_payloads():
    error = ErrorCallback(error="voice_url unreachable", error_details={"code": "url_unreachable"})
    assert error.model_dump() == {
        "story_id": None,
        "error": "voice_url unreachable",
        "error_details": {"code": "url_unreachable"},
        "user_id": None,
        "voice_id": None,
        "job_id": None,
        "metadata": None,
    }
    with pytest.raises(ValidationError):
        ErrorCallback(story_id="s1")  # error is required
    with pytest.raises(ValidationError):
        ErrorCallback(error="x", eror_details="typo")
    success = SuccessCallback(
        job_id="j1",
        audio_url="https://cdn.example/a.mp3",
        audio_path="audio/j1.mp3",
        content_type="audio/mpeg",
        format="mp3",
        duration_s=1.5,
        size_bytes=1234,
    )
    assert success.status == "succeeded"


# --- signatures ----------------------------------------------------------------

BODY = b'{"job_id": "j1", "status": "succeeded"}'


def test_signature_round_trip():
    signature = sign(SECRET, int(NOW), BODY)
    assert signature.startswith("v1=") and len(signature) == 3 + 64
    assert verify(SECRET, str(int(NOW)), BODY, signature, now=NOW + 10)


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "signature", "now"),
    [
        (SECRET, "1700000000", BODY + b" ", None, NOW),  # tampered body
        ("other-secret", "1700000000", BODY, None, NOW),
        (SECRET, "1700000000", BODY, None, NOW + 301),  # stale: a replay
        (SECRET, "1700000000", BODY, None, NOW - 301),  # from the future
        (SECRET, "1700000001", BODY, None, NOW),  # timestamp changed after signing
        (SECRET, None, BODY, None, NOW),
        (SECRET, "", BODY, None, NOW),
        (SECRET, "soon", BODY, None, NOW),
        (SECRET, "+1700000000", BODY, None, NOW),
        (SECRET, "1700000000", BODY, "", NOW),
        (SECRET, "1700000000", BODY, "v1=zz", NOW),
        (SECRET, "1700000000", BODY, "v1=é" + "0" * 63, NOW),
    ],
)
def test_signature_refused(secret, timestamp, body, signature, now):
    signature = sign(SECRET, int(NOW), BODY) if signature is None else signature
    assert not verify(secret, timestamp, body, signature, now=now)


def test_delivery_headers():
    options = {"idempotency_key": "k1", "event": "job.succeeded", "attempt": 2, "now": NOW}
    unsigned = delivery_headers(BODY, secret=None, **options)
    assert unsigned == {
        "Content-Type": "application/json",
        "User-Agent": "voicegraph-callbacks",
        IDEMPOTENCY_HEADER: "k1",
        EVENT_HEADER: "job.succeeded",
        ATTEMPT_HEADER: "2",
        TIMESTAMP_HEADER: "1700000000",
    }
    signed = delivery_headers(BODY, secret=SECRET, **options)
    assert signed == {**unsigned, SIGNATURE_HEADER: sign(SECRET, 1_700_000_000, BODY)}


# --- deliver, to a real receiver ---------------------------------------------------


@pytest.fixture
def receiver():
    with CallbackReceiver() as running:
        yield running


def send(receiver, secret=SECRET, allow=None, path="/api/tts/callback"):
    headers = delivery_headers(
        BODY, idempotency_key="k1", event="job.succeeded", attempt=1, secret=secret, now=NOW
    )
    allow = AllowList.parse([f"127.0.0.1:{receiver.port}"] if allow is None else allow)
    return deliver(receiver.url(path), BODY, headers, allow=allow, timeout_s=2.0)


def test_delivered(receiver):
    delivery = send(receiver)
    assert (delivery.delivered, delivery.status, delivery.error) == (True, 200, None)
    [got] = receiver.processed
    assert got.path == "/api/tts/callback"
    assert got.json == json.loads(BODY)
    assert got.headers["idempotency-key"] == "k1"
    signature = got.headers[SIGNATURE_HEADER]
    assert verify(SECRET, got.headers[TIMESTAMP_HEADER], got.body, signature, now=NOW)


def test_receiver_deduplicates_by_idempotency_key(receiver):
    receiver.respond_with(500)
    assert send(receiver).status == 500
    receiver.respond_with(200)
    assert send(receiver).delivered
    assert send(receiver).delivered
    assert len(receiver.received) == 3
    assert len(receiver.processed) == 1


@pytest.mark.parametrize("status", [500, 404, 302])
def test_error_answer_is_not_delivered(receiver, status):
    receiver.respond_with(status)
    delivery = send(receiver)
    assert (delivery.delivered, delivery.status) == (False, status)
    assert f"HTTP {status}" in delivery.error
    assert ("redirects are not followed" in delivery.error) is (status == 302)
    assert receiver.processed == []


def test_stopped_receiver_is_not_delivered(receiver):
    receiver.stop()
    delivery = send(receiver)
    assert (delivery.delivered, delivery.status) == (False, None)
    assert "could not POST to" in delivery.error
    receiver.restart()
    assert send(receiver).delivered
    assert len(receiver.processed) == 1


def test_refused_url_is_not_delivered(receiver):
    delivery = send(receiver, allow=[])
    assert (delivery.delivered, delivery.status) == (False, None)
    assert "loopback" in delivery.error
    assert receiver.received == []


def test_wait_for_sees_deliveries_from_another_thread(receiver):
    sender = threading.Thread(target=send, args=(receiver,))
    sender.start()
    assert receiver.wait_for(lambda: len(receiver.processed) == 1, timeout=5)
    sender.join(5)
    assert not receiver.wait_for(lambda: len(receiver.received) == 2, timeout=0.05)
