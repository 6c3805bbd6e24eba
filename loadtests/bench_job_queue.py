"""Benchmark of the job queue: jobs per second through 1 and 3 StorageActor replicas.

    .venv/bin/python loadtests/bench_job_queue.py                  # a private PostgreSQL
    .venv/bin/python loadtests/bench_job_queue.py --database-url postgresql://...

Deploys only the StorageActor on a private local Ray, once per replica count
in --replicas (default 1 and 3, on PostgreSQL) and once with one replica on
SQLite, and drives each through DeploymentHandles as the ingress replicas
would: --concurrency workers, each looping create → claim → heartbeat →
complete (a small WAV, stored on the local backend) → status. No synthesis:
what is measured is the queue's own cost. Without --database-url it starts a
PostgreSQL from the distribution's packages on a free loopback port
(tests/helpers/postgres.py). Prints a table and, last, JSON. A benchmark, not
a test: numbers depend on the machine (on 2 cores the replicas share them).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def tiny_audio():
    from voicegraph.audio.stitching import StitchedAudio

    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(2205, dtype=np.int16), 22050, format="WAV")
    return StitchedAudio(buffer.getvalue(), "wav", "audio/wav", 22050, 0.1, (0.1,))


async def drive(handle, seconds: float, concurrency: int, replica_tag: str) -> dict:
    from voicegraph.jobs.records import NewJob

    audio = tiny_audio()
    done: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        owner = f"{replica_tag}-{index}:run"
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            job = await handle.create_job.remote(NewJob(request={"text": "queue"}))
            claimed = await handle.claim_job.remote(owner, job.id)
            if claimed is None:
                continue
            await handle.heartbeat_job.remote(job.id, owner, 1, 1)
            await handle.complete_job.remote(job.id, audio, "bench")
            assert await handle.job_status.remote(job.id) == "succeeded"
            done.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    wall = time.perf_counter() - started
    done.sort()
    return {
        "jobs": len(done),
        "jobs_per_s": round(len(done) / wall, 1),
        "p50_ms": round(1000 * done[len(done) // 2], 1),
        "p95_ms": round(1000 * done[int(len(done) * 0.95)], 1),
    }


def run_one(backend: str, replicas: int, database_url: str | None, args) -> dict:
    from ray import serve

    from deployments.storage_actor import StorageActor
    from voicegraph.core.settings import ReplicaSettings, Settings

    root = Path(tempfile.mkdtemp(prefix="bench-job-queue-"))
    settings = Settings(
        storage_root=root,
        jobs={"database_url": database_url} if backend == "postgresql" else {},
        storage=ReplicaSettings(num_replicas=replicas, num_cpus=0, max_ongoing_requests=64),
    )
    app = StorageActor.options(
        num_replicas=replicas,
        max_ongoing_requests=settings.storage.max_ongoing_requests,
        ray_actor_options={"num_cpus": 0},
    ).bind(settings)
    handle = serve.run(app, name=f"queue-{backend}-{replicas}", route_prefix=None)
    asyncio.run(drive(handle, 2.0, args.concurrency, "warmup"))
    result = asyncio.run(drive(handle, args.seconds, args.concurrency, "bench"))
    serve.delete(f"queue-{backend}-{replicas}")
    return {"backend": backend, "replicas": replicas, "concurrency": args.concurrency, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a PostgreSQL to use (each run gets a new database on it)")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--num-cpus", type=int, default=4)
    args = parser.parse_args()

    import psycopg
    import ray
    from ray import serve

    from deployments.serve_env import with_serve_env

    server = None
    base_url = args.database_url
    if base_url is None:
        from tests.helpers.ports import free_port
        from tests.helpers.postgres import PostgresServer

        server = PostgresServer(free_port())
        server.start()
        base_url = server.url()

    def new_database(tag: str) -> str:
        name = f"bench_queue_{tag}_{int(time.time())}"
        with psycopg.connect(base_url, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return base_url.rsplit("/", 1)[0] + "/" + name

    os.environ.update(with_serve_env(os.environ))
    ray.init(address="local", include_dashboard=False, log_to_driver=False, num_cpus=args.num_cpus)
    results = []
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": 0})
        results.append(run_one("sqlite", 1, None, args))
        for replicas in args.replicas:
            results.append(run_one("postgresql", replicas, new_database(str(replicas)), args))
    finally:
        serve.shutdown()
        ray.shutdown()
        if server is not None:
            server.stop()

    print(f"{'backend':<11}{'replicas':>9}{'jobs':>7}{'jobs/s':>9}{'p50 ms':>9}{'p95 ms':>9}")
    for r in results:
        print(f"{r['backend']:<11}{r['replicas']:>9}{r['jobs']:>7}{r['jobs_per_s']:>9}{r['p50_ms']:>9}{r['p95_ms']:>9}")
    postgres = {r["replicas"]: r["jobs_per_s"] for r in results if r["backend"] == "postgresql"}
    if 1 in postgres:
        for replicas, rate in postgres.items():
            print(f"postgresql, {replicas} replicas vs 1: {rate / postgres[1]:.2f}x")
    print(json.dumps({"machine": f"{os.cpu_count()} cores", "results": results}))


if __name__ == "__main__":
    main()
