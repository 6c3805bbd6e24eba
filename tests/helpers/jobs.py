"""Async jobs over HTTP: submit one, wait for it, read its callbacks."""

import time


def submit(client, **fields) -> dict:
    response = client.post("/v1/tts/jobs", json=fields)
    assert response.status_code == 202, response.text
    body = response.json()
    assert response.headers["location"] == body["status_url"]
    return body


def wait_for_job(client, job_id: str, done, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/v1/tts/jobs/{job_id}")
        assert response.status_code == 200, response.text
        status = response.json()
        if done(status):
            return status
        assert time.monotonic() < deadline, f"job never got there: {status}"
        time.sleep(0.2)


def finished(status: dict) -> bool:
    return status["status"] in ("succeeded", "failed", "cancelled")


def callbacks_settled(status: dict) -> bool:
    return finished(status) and all(c["state"] != "pending" for c in status["callbacks"])


def deliveries(receiver, job_id: str, processed: bool = False) -> list:
    """The callbacks for one job a CallbackReceiver got (processed: answered 2xx)."""
    items = receiver.processed if processed else receiver.received
    return [item for item in items if (item.json or {}).get("job_id") == job_id]
