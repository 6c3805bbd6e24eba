"""Run by test_node_loss.py in its own process (one Ray connection per process).

A three-node cluster on this machine: the head runs the graph; node A alone
declares `storage_node`, so both StorageActor replicas run there. Jobs are put
in every state that matters, then node A is removed, as a reclaimed spot
instance would be: some have their audio in the bucket and their callback
refused so far, some their audio staged in the database while the bucket is
down, some running on the head and the rest queued. Node B, with the same
resource, joins; Serve starts the replicas there. The bucket and the callback
receiver come back, and the check prints, as JSON, what became of every job,
callback and upload.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import ray
from ray import serve
from ray.cluster_utils import Cluster

from serve_app.app import build_app
from tests.helpers.audio import decode
from tests.helpers.callback_receiver import CallbackReceiver
from tests.helpers.gcs_emulator import GcsEmulator
from tests.helpers.jobs import callbacks_settled, submit
from tests.helpers.ports import free_port
from tests.helpers.texts import long_text
from voicegraph.jobs.callbacks import IDEMPOTENCY_HEADER

BUCKET = "voicegraph-node-loss"
STORAGE_NODE = "storage_node"
# Ray notices a lost node in about period x threshold, not its default 30 s.
FAST_NODE_HEALTH = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 500,
    "health_check_failure_threshold": 3,
}


def settings(root: Path, database_url: str, emulator: GcsEmulator, receiver: CallbackReceiver) -> dict:
    return {
        "engine": "espeak",
        "storage_root": str(root),
        "storage_backend": "firebase",
        "firebase": {
            "bucket": BUCKET,
            "emulator_host": emulator.host,
            "url_mode": "public",
            "timeout_s": 1,
            "retry_deadline_s": 1,
            "upload_retry_initial_s": 0.3,
            "upload_retry_max_s": 1,
        },
        "synthesizer": {"min_replicas": 1, "max_replicas": 1},
        # So that the bucket holds the jobs' audio and nothing else.
        "response_cache": {"enabled": False},
        # No CPU, so only they fit on node A, which has none to offer.
        "storage": {
            "num_replicas": 2,
            "num_cpus": 0,
            "resources": {STORAGE_NODE: 1},
            "health_check_period_s": 1,
            "health_check_timeout_s": 2,
        },
        "outbound": {"allow": [f"127.0.0.1:{receiver.port}"]},
        "jobs": {
            "database_url": database_url,
            "max_running_per_replica": 2,
            "lease_s": 3,
            "heartbeat_s": 0.3,
            "poll_interval_s": 0.3,
            # Long beside a loopback send even on a starved machine: a send
            # that outlasts its hold is the one way a callback goes out twice.
            "outbox_hold_s": 10,
        },
        "callbacks": {"timeout_s": 2, "initial_backoff_s": 0.2, "max_backoff_s": 1.0, "poll_interval_s": 0.2},
    }


def wait_until(what: str, predicate, timeout_s: float = 120, show=lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"never happened: {what}\n{show()}")
        time.sleep(0.2)


def storage_nodes() -> set[str]:
    handle = serve.get_deployment_handle("StorageActor", "voicegraph")
    return {handle.replica_info.remote().result()["node_id"] for _ in range(8)}


def bucket_audio_s(emulator: GcsEmulator, key: str) -> float:
    samples, rate = decode(httpx.get(f"{emulator.url}/{BUCKET}/{key}", timeout=30).raise_for_status().content)
    return len(samples) / rate


def main(workdir: str, database_url: str) -> None:
    work = Path(workdir)
    emulator = GcsEmulator(work / "gcs", port=free_port(), bucket=BUCKET)
    emulator.start()
    receiver = CallbackReceiver().start()
    receiver.respond_with(503)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "_system_config": FAST_NODE_HEALTH})
    node_a = cluster.add_node(num_cpus=0, resources={STORAGE_NODE: 2})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    port = free_port()
    try:
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(settings(work / "storage", database_url, emulator, receiver)), name="voicegraph")
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)

        submitted: list[str] = []

        def status(job_id: str) -> dict:
            return http.get(f"/v1/tts/jobs/{job_id}").json()

        def job(number: int, chars: int) -> str:
            submitted.append(submit(
                http, text=long_text(chars, start=number * 1000), callback_url=receiver.url(),
                error_callback_url=receiver.url("/api/tts/error"), story_id=f"story-{number}",
            )["job_id"])
            return submitted[-1]

        def statuses() -> str:
            return "\n".join(json.dumps(status(j)) for j in submitted)

        nodes_before = storage_nodes()
        # Done, in the bucket, its callback refused so far.
        delivered = [job(n, 200) for n in range(3)]
        wait_until("callbacks refused", lambda: all(
            (s := status(j))["status"] == "succeeded" and s["callbacks"][0]["attempts"] >= 1 for j in delivered
        ), show=statuses)
        # Synthesized while the bucket is down: the audio waits in the database
        # and the job stays running until it is uploaded.
        emulator.stop()
        staged = [job(n, 200) for n in range(3, 6)]
        wait_until("audio staged", lambda: all(
            (status(j)["result"] or {}).get("upload") == "pending" for j in staged
        ), show=statuses)
        # Long enough to be running when the node goes, with more queued behind.
        waiting = [job(n, 3000) for n in range(6, 12)]
        wait_until("one running", lambda: any(status(j)["status"] == "running" for j in waiting), show=statuses)
        jobs = delivered + staged + waiting
        at_loss = Counter(
            "upload pending" if (s := status(j))["result"] and s["result"]["upload"] == "pending"
            else f"{s['status']}, callback pending" if s["status"] == "succeeded"
            else s["status"]
            for j in jobs
        )

        cluster.add_node(num_cpus=0, resources={STORAGE_NODE: 2})
        lost_at = time.monotonic()
        cluster.remove_node(node_a)
        # Its disk goes with it: nothing may have been kept there.
        for path in (work / "storage").rglob("*"):
            if path.is_file():
                path.unlink()
        wait_until("replicas on the new node", lambda: storage_nodes().isdisjoint(nodes_before), timeout_s=60)
        recovered_s = time.monotonic() - lost_at

        emulator.start()
        receiver.respond_with(200)
        # Settled implies uploaded: a job succeeds once its audio is in the bucket.
        wait_until("every job settled", lambda: all(callbacks_settled(status(j)) for j in jobs), 240, statuses)
        # Anything sent twice would come now, after the hold a dead sender's rows wait out.
        time.sleep(5)

        finals = {j: status(j) for j in jobs}
        answered_2xx = [d for d in receiver.received if 200 <= d.status < 300]
        accepted = Counter((d.json or {}).get("job_id") for d in answered_2xx)
        keys = Counter(d.headers.get(IDEMPOTENCY_HEADER) for d in answered_2xx)
        listing = httpx.get(f"{emulator.url}/storage/v1/b/{BUCKET}/o", timeout=30).json()
        objects = Counter(item["name"] for item in listing.get("items", []))
        results = {j: s["result"]["path"] for j, s in finals.items()}
        print("NODE_LOSS_REPORT " + json.dumps({
            "storage_nodes_before": sorted(nodes_before),
            "storage_nodes_after": sorted(storage_nodes()),
            "lost_node": node_a.node_id,
            "recovered_s": round(recovered_s, 1),
            "at_loss": at_loss,
            "jobs": {
                j: {"status": s["status"], "attempts": s["attempts"], "callbacks": [
                    {"kind": c["kind"], "state": c["state"]} for c in s["callbacks"]
                ]} for j, s in finals.items()
            },
            "callbacks_accepted_per_job": {j: accepted[j] for j in jobs},
            "callbacks_accepted_per_key": dict(keys),
            "results": results,
            "objects": dict(objects),
            # The bucket's copy, decoded, against the length the job reported.
            "audio_s": {j: [round(bucket_audio_s(emulator, path), 2), finals[j]["result"]["duration_s"]]
                        for j, path in results.items()},
        }))
    finally:
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()
        receiver.stop()
        emulator.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
