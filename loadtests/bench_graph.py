"""Benchmark of the whole graph over HTTP: latency, throughput, real-time factor.

    .venv/bin/python loadtests/bench_graph.py                 # starts its own graph(s)
    .venv/bin/python loadtests/bench_graph.py --url http://127.0.0.1:8000
    .venv/bin/python loadtests/bench_graph.py --replicas 1 --sizes 6000 --router-max-backoff 0.5 0.05

Without --url it deploys the graph on a private local Ray once per Synthesizer
replica count in --replicas (default 1 and 2), and per --router-max-backoff
(how long a full Synthesizer's callers wait before looking again), and compares
them; with --url it measures the service already running there. Prints a table and, last, JSON.
Every request repeats its text: the graphs this starts have the response cache
off, so synthesis is measured; start a --url service with
VG_RESPONSE_CACHE__ENABLED=false for the same, or leave it on to measure hits.
A benchmark, not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

T = TypeVar("T")


def make_text(characters: int) -> str:
    sentence = "The graph splits this text into chunks and speaks them on every replica. "
    return (sentence * (characters // len(sentence) + 1))[:characters].rsplit(" ", 1)[0] + "."


def measure(url: str, characters: int, requests: int, concurrency: int) -> dict:
    text = make_text(characters)
    with httpx.Client(base_url=url, timeout=600) as client:
        client.post("/v1/tts", json={"text": "Warm up."}).raise_for_status()

        def one(_):
            started = time.perf_counter()
            response = client.post("/v1/tts", json={"text": text})
            response.raise_for_status()
            return time.perf_counter() - started, float(response.headers["x-audio-duration"])

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(one, range(requests)))
        wall = time.perf_counter() - started
    latencies = sorted(latency for latency, _ in results)
    audio = sum(seconds for _, seconds in results)
    return {
        "characters": characters,
        "requests": requests,
        "concurrency": concurrency,
        "p50_s": statistics.median(latencies),
        "p95_s": latencies[max(0, int(0.95 * len(latencies)) - 1)],
        "requests_per_s": requests / wall,
        "audio_s_per_wall_s": audio / wall,  # > 1: faster than real time
    }


def deploy(replicas: int, port: int, response_cache: bool = False, router_max_backoff_s: float | None = None) -> str:
    from ray import serve

    from serve_app.app import build_app

    settings = {
        # eSpeak: these benchmarks measure the graph, not an engine (bench_engine.py does).
        "engine": "espeak",
        "synthesizer": {"min_replicas": replicas, "max_replicas": replicas},
        "storage_root": "/tmp/voicegraph-bench",
        "response_cache": {"enabled": response_cache},
        # Throughput, not admission, is measured: every request is let in.
        "admission": {"max_queue_wait_s": 600},
    }
    if router_max_backoff_s is not None:
        settings["router_max_backoff_s"] = router_max_backoff_s
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(settings), name="voicegraph", route_prefix="/")
    return f"http://127.0.0.1:{port}"


def start_local_ray(num_cpus: int | None = None) -> None:
    """A private local Ray whose processes run under Serve's flags as the
    service's do: they inherit this environment when Ray starts them."""
    import ray

    from deployments.serve_env import with_serve_env

    os.environ.update(with_serve_env(os.environ))
    ray.init(address="local", include_dashboard=False, log_to_driver=False, num_cpus=num_cpus)


def measure_on(url: str | None, replicas: int, measure: Callable[[str], T], response_cache: bool = False) -> T:
    """`measure(url)` against the service at `url`, or without one against a
    graph deployed on a private local Ray for the occasion."""
    if url:
        return measure(url)
    import ray
    from ray import serve

    from tests.helpers.ports import free_port

    start_local_ray(num_cpus=4)
    try:
        result = measure(deploy(replicas, free_port(), response_cache))
        serve.shutdown()
        return result
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 2000, 13000])
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--router-max-backoff", type=float, nargs="+", default=[None], metavar="S")
    options = parser.parse_args()

    rows = []
    if options.url:
        for size in options.sizes:
            rows.append({"replicas": "running", **measure(options.url, size, options.requests, options.concurrency)})
    else:
        import ray
        from ray import serve

        from tests.helpers.ports import free_port

        start_local_ray(num_cpus=4)
        try:
            for replicas in options.replicas:
                for backoff in options.router_max_backoff:
                    url = deploy(replicas, free_port(), router_max_backoff_s=backoff)
                    for size in options.sizes:
                        result = measure(url, size, options.requests, options.concurrency)
                        rows.append({"replicas": replicas, "router_max_backoff_s": backoff, **result})
                    serve.shutdown()
        finally:
            ray.shutdown()

    header = f"{'replicas':>8} {'backoff':>7} {'chars':>6} {'p50 s':>7} {'p95 s':>7} {'req/s':>7} {'audio s/s':>9}"
    print(header)
    for row in rows:
        backoff = row.get("router_max_backoff_s")
        print(
            f"{row['replicas']!s:>8} {'default' if backoff is None else backoff:>7} {row['characters']:>6} "
            f"{row['p50_s']:>7.3f} {row['p95_s']:>7.3f} {row['requests_per_s']:>7.2f} {row['audio_s_per_wall_s']:>9.1f}"
        )
    counts = sorted({r["replicas"] for r in rows if isinstance(r["replicas"], int)})
    backoffs = options.router_max_backoff
    for size in options.sizes:
        if len(counts) > 1:
            first, last = (
                next(r for r in rows if r["replicas"] == n and r["characters"] == size) for n in (counts[0], counts[-1])
            )
            ratio = last["p50_s"] / first["p50_s"]
            print(f"{size} chars: p50 with {counts[-1]} replicas / with {counts[0]} = {ratio:.2f}")
        for replicas in counts if len(backoffs) > 1 else ():
            first, last = (
                next(
                    r
                    for r in rows
                    if (r["replicas"], r["router_max_backoff_s"], r["characters"]) == (replicas, backoff, size)
                )
                for backoff in (backoffs[0], backoffs[-1])
            )
            ratio = last["requests_per_s"] / first["requests_per_s"]
            compared = f"with backoff {backoffs[-1]} / with {backoffs[0]}"
            print(f"{size} chars, {replicas} replicas: req/s {compared} = {ratio:.2f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
