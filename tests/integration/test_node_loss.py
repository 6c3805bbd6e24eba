"""The node holding the StorageActor is lost, with jobs queued, running,
staged for upload and waiting for callbacks: with the job state in
PostgreSQL every job finishes once, every callback is delivered once and
no upload is lost (docs/operations.md: "State")."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_losing_the_storage_node_loses_no_job_callback_or_upload(tmp_path, postgres):
    result = subprocess.run(
        [sys.executable, "-m", "tests.integration.node_loss_check", str(tmp_path), postgres.new_database()],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-6000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("NODE_LOSS_REPORT ")]
    report = json.loads(line.removeprefix("NODE_LOSS_REPORT "))
    print(json.dumps({key: report[key] for key in ("at_loss", "recovered_s", "callbacks_accepted_per_job")}))

    # Both replicas were on the lost node, and were started again elsewhere.
    assert report["storage_nodes_before"] == [report["lost_node"]]
    assert report["lost_node"] not in report["storage_nodes_after"]
    # The loss came with every kind of unfinished work.
    assert set(report["at_loss"]) >= {"succeeded, callback pending", "upload pending", "running", "queued"}

    jobs = report["jobs"]
    assert len(jobs) == 12
    for job_id, job in jobs.items():
        assert job["status"] == "succeeded", (job_id, job)
        assert [(c["kind"], c["state"]) for c in job["callbacks"]] == [("success", "delivered")], job
        assert report["callbacks_accepted_per_job"][job_id] == 1, job_id
    assert set(report["callbacks_accepted_per_key"].values()) == {1}
    # Each job's audio is in the bucket once, nothing else is, and it is whole.
    assert report["objects"] == {path: 1 for path in report["results"].values()}
    for job_id, (decoded_s, reported_s) in report["audio_s"].items():
        assert decoded_s == pytest.approx(reported_s, abs=0.05), job_id
