"""Serve's JSON logs, as an operator queries them: one id finds a request's
lines in every deployment it crossed, and a job's lines by its job id."""

import json
import time
import uuid
from pathlib import Path

import pytest

from tests.helpers.jobs import finished, submit, wait_for_job

pytestmark = pytest.mark.integration


def serve_log_lines() -> list[dict]:
    """Every JSON line of every replica of the session's applications."""
    import ray

    logs = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"
    lines = []
    for path in logs.glob("replica_voicegraph_*.log"):
        for line in path.read_text(errors="replace").splitlines():
            try:
                lines.append({**json.loads(line), "file": path.name})
            except json.JSONDecodeError:
                continue
    return lines


def deployments_with(lines: list[dict], field: str, value: str) -> set[str]:
    return {line["deployment"].removeprefix("voicegraph_") for line in lines if line.get(field) == value}


def wait_for_lines(field: str, value: str, deployments: set[str]) -> list[dict]:
    # Replicas write their logs as they go: give the last lines a moment.
    deadline = time.monotonic() + 20
    while True:
        lines = serve_log_lines()
        if deployments <= deployments_with(lines, field, value) or time.monotonic() > deadline:
            return lines
        time.sleep(0.5)


def test_a_request_id_finds_the_requests_lines_in_every_deployment_it_crossed(client):
    request_id = f"log-check-{uuid.uuid4().hex}"
    secret = f"Quokka{uuid.uuid4().hex[:10]}"
    # MP3: WAV is joined in the ingress and would not reach the Stitcher.
    response = client.post(
        "/v1/tts",
        json={"text": f"{secret} said hello. Then it said goodbye.", "format": "mp3"},
        headers={"X-Request-ID": request_id},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == request_id
    crossed = {"Ingress", "TextChunker", "Synthesizer-espeak", "Stitcher"}
    lines = wait_for_lines("request_id", request_id, crossed)
    assert crossed <= deployments_with(lines, "request_id", request_id)
    # What was said is the user's: never in the logs.
    assert not any(secret in json.dumps(line) for line in lines)


def test_a_job_id_finds_the_jobs_lines_in_every_deployment_that_worked_on_it(client):
    secret = f"Wombat{uuid.uuid4().hex[:10]}"
    job = submit(client, text=f"{secret} runs as a job. It has two sentences.", format="mp3")
    assert wait_for_job(client, job["job_id"], finished)["status"] == "succeeded"
    worked_on_it = {"Synthesizer-espeak", "Stitcher", "StorageActor"}
    lines = wait_for_lines("request_id", job["job_id"], worked_on_it)
    assert worked_on_it <= deployments_with(lines, "request_id", job["job_id"])
    assert not any(secret in json.dumps(line) for line in lines)
