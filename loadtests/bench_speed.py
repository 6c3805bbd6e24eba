"""Benchmark of the service's speed against the engine's limit and Serve's floor, in one run.

    .venv/bin/python loadtests/bench_speed.py
    .venv/bin/python loadtests/bench_speed.py --repeats 2 --short-requests 200
    .venv/bin/python loadtests/bench_speed.py --skip-engine --serve-env RAY_SERVE_PROXY_USE_GRPC=0

All on eSpeak with the response cache off, on a private local Ray:
1. the engine alone on the 13,000-character text, chunked as the service
   chunks it: in this process (one core), and over a pool of one process per
   core (the limit);
2. a no-op graph with the service's hops for a WAV (ingress, chunker, one call
   per chunk to a synthesizer, joined in the ingress), its transport and its
   replica shapes: short requests from --clients concurrent clients (Serve's
   own floor for these hops);
3. the service: the same short requests, 13,000 characters as WAV and as MP3,
   time to first audio at 100 and 13,000 characters, and the bytes the
   Synthesizer sends back per 13,000-character request.
The two graphs are deployed one after the other, both under Serve's flags as
the service runs them (deployments/serve_env.py). Prints a table, the ratios
against their targets, then JSON. A benchmark, not a test: numbers depend on
the machine.
"""

# No `from __future__ import annotations`: FastAPI reads the no-op ingress's
# parameter types at run time, in a replica that has not this module's globals.
import argparse
import asyncio
import json
import math
import multiprocessing
import os
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from fastapi import FastAPI, Request, Response
from ray import serve

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deployments.serve_env import with_serve_env  # noqa: E402
from loadtests.bench_graph import deploy, make_text, start_local_ray  # noqa: E402
from loadtests.bench_stream import first_audio, whole  # noqa: E402
from voicegraph.core.settings import Settings  # noqa: E402
from voicegraph.engines import build_engine  # noqa: E402

LONG_CHARS = 13000
SHORT_TEXT = "The quick brown fox jumps over the lazy dog by the river."
NOOP_CHUNK_CHARS = 400  # eSpeak's chunk size: the no-op chunker cuts as many pieces


def median_time(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# --- 1. The engine alone ---------------------------------------------------

_worker_engine = None


def _start_engine_worker(all_started) -> None:
    global _worker_engine
    _worker_engine = build_engine(Settings(engine="espeak"))
    info = _worker_engine.info()
    _worker_engine.synthesize("Warm up.", info.voices[0].id, info.default_language, 1.0)
    # No worker takes a chunk before every one is warm: none starts inside a timed map.
    all_started.wait()


def _synthesize_in_worker(chunk: str) -> int:
    info = _worker_engine.info()
    # The sample count, not the audio: the limit is the engine's work alone.
    return len(_worker_engine.synthesize(chunk, info.voices[0].id, info.default_language, 1.0))


def service_chunks(text: str) -> list[str]:
    """`text` cut as the service cuts a request in the engine's default language."""
    from tests.helpers.texts import service_chunks as graph_chunks

    info = build_engine(Settings(engine="espeak")).info()
    language = info.default_language
    return graph_chunks(text, info.chunk_chars_for(language), language)


def measure_engine(chunks: list[str], repeats: int) -> dict:
    engine = build_engine(Settings(engine="espeak"))
    info = engine.info()
    voice, language = info.voices[0].id, info.default_language
    engine.synthesize("Warm up.", voice, language, 1.0)
    one_core = median_time(lambda: [engine.synthesize(chunk, voice, language, 1.0) for chunk in chunks], repeats)

    processes = os.cpu_count() or 1
    context = multiprocessing.get_context("spawn")
    all_started = context.Barrier(processes)
    with context.Pool(processes, initializer=_start_engine_worker, initargs=(all_started,)) as pool:
        pool.map(_synthesize_in_worker, chunks[:processes], chunksize=1)
        all_cores = median_time(lambda: pool.map(_synthesize_in_worker, chunks, chunksize=1), repeats)
    return {
        "engine_chunks": len(chunks),
        "engine_one_core_s": one_core,
        "engine_processes": processes,
        "engine_processes_s": all_cores,
    }


# --- 2. The no-op graph ----------------------------------------------------

noop_api = FastAPI()


@serve.deployment(name="NoopChunker")
class NoopChunker:
    def chunk(self, text: str) -> list[str]:
        return [text[start:start + NOOP_CHUNK_CHARS] for start in range(0, len(text), NOOP_CHUNK_CHARS)]


@serve.deployment(name="NoopSynthesizer")
class NoopSynthesizer:
    def synthesize(self, chunk: str) -> np.ndarray:
        return np.zeros(10, dtype=np.int16)


@serve.deployment(name="NoopIngress")
@serve.ingress(noop_api)
class NoopIngress:
    def __init__(self, chunker, synthesizer):
        # As the service's Ingress: text and chunks over gRPC.
        self._chunker = chunker.options(_by_reference=False)
        self._synthesizer = synthesizer.options(_by_reference=False)

    @noop_api.post("/v1/tts")
    async def tts(self, request: Request) -> Response:
        body = await request.json()
        chunks = await self._chunker.chunk.remote(body["text"])
        parts = await asyncio.gather(*(self._synthesizer.synthesize.remote(chunk) for chunk in chunks))
        # As the service does a WAV: joined here, not in a Stitcher.
        return Response(np.concatenate(parts).tobytes(), media_type="audio/wav")


def deploy_noop(settings: Settings, port: int) -> str:
    """The no-op graph, each deployment shaped as the service's own."""
    from serve_app.app import _common, _fixed

    synth = settings.synthesizer
    synthesizer_options = {
        **_common(synth, settings),
        "num_replicas": synth.min_replicas,
        "ray_actor_options": {"num_cpus": synth.num_cpus},
    }
    app = NoopIngress.options(**_fixed(settings.ingress, settings)).bind(
        NoopChunker.options(**_fixed(settings.chunker, settings)).bind(),
        NoopSynthesizer.options(**synthesizer_options).bind(),
    )
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(app, name="noop", route_prefix="/")
    return f"http://127.0.0.1:{port}"


# --- 3. Over HTTP ----------------------------------------------------------

def short_requests(url: str, clients: int, requests: int) -> dict:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    with httpx.Client(base_url=url, timeout=600, limits=limits) as client:

        def one(_) -> float:
            started = time.perf_counter()
            client.post("/v1/tts", json={"text": SHORT_TEXT, "format": "wav"}).raise_for_status()
            return time.perf_counter() - started

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(one, range(2 * clients)))  # warm-up: every connection open
            started = time.perf_counter()
            latencies = list(pool.map(one, range(requests)))
            wall = time.perf_counter() - started
    return {"p50_ms": 1000 * statistics.median(latencies), "requests_per_s": requests / wall}


def measure_long(url: str, repeats: int, ttfa_repeats: int) -> dict:
    long_text = make_text(LONG_CHARS)
    short_text = make_text(100)
    with httpx.Client(base_url=url, timeout=600) as client:
        warm = client.post("/v1/tts", json={"text": long_text, "format": "wav"})
        warm.raise_for_status()
        whole(client, long_text, "mp3")
        first_audio(client, short_text, "pcm")
        # The two sizes alternate, so a noisy spell of the machine hits both alike.
        ttfa = {100: [], LONG_CHARS: []}
        for _ in range(ttfa_repeats):
            for characters, text in ((100, short_text), (LONG_CHARS, long_text)):
                ttfa[characters].append(first_audio(client, text, "pcm")[0])
        return {
            "audio_s_13k": float(warm.headers["x-audio-duration"]),
            "service_13k_wav_s": statistics.median(whole(client, long_text, "wav") for _ in range(repeats)),
            "service_13k_mp3_s": statistics.median(whole(client, long_text, "mp3") for _ in range(repeats)),
            "ttfa_100_ms": 1000 * statistics.median(ttfa[100]),
            "ttfa_13k_ms": 1000 * statistics.median(ttfa[LONG_CHARS]),
        }


def synthesizer_bytes(chunks: list[str]) -> int:
    """Bytes Ray ships back from the Synthesizer for `chunks`, as pickled."""
    handle = serve.get_deployment_handle("Synthesizer-espeak", app_name="voicegraph")
    info = handle.describe.remote().result()
    responses = [
        handle.synthesize.remote(chunk, info.voices[0].id, info.default_language, 1.0) for chunk in chunks
    ]
    return sum(len(pickle.dumps(response.result(), protocol=5)) for response in responses)


# --- Running and reporting -------------------------------------------------

def ray_cpus(settings: Settings) -> int:
    """The machine's cores, or the fewest whole CPUs the service's replicas ask for
    where that is more: a replica that does not fit would never start."""
    fixed = (settings.ingress, settings.chunker, settings.stitcher, settings.storage, settings.cloner,
             settings.profiles)
    needed = sum(shape.num_replicas * shape.num_cpus for shape in fixed)
    needed += settings.synthesizer.min_replicas * settings.synthesizer.num_cpus
    return max(os.cpu_count() or 1, math.ceil(needed))


def set_serve_env(pairs: list[str]) -> dict[str, str]:
    """Serve's flags as the service runs them (deployments/serve_env.py), with
    `pairs` over them, in this process's environment from its start: Serve
    reads them at import, in the driver too, so this run starts again under
    them when they are not there yet."""
    chosen = with_serve_env(dict(pair.split("=", 1) for pair in pairs))
    if any(os.environ.get(name) != value for name, value in chosen.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **chosen})
    return chosen


def print_ratios(results: dict) -> None:
    if "engine_processes_s" in results:
        engine = results["engine_processes_s"]
        processes = results["engine_processes"]
        print(f"engine 13k chars: one core {results['engine_one_core_s']:.2f} s, "
              f"{processes} processes {engine:.2f} s")
        print(f"service 13k WAV {results['service_13k_wav_s']:.2f} s = "
              f"{results['service_wav_over_engine']:.2f}x the {processes}-process engine   (target <= 1.5x)")
        print(f"service 13k MP3 {results['service_13k_mp3_s']:.2f} s = "
              f"{results['service_mp3_over_engine']:.2f}x                          (target <= 2x)")
    else:
        print(f"service 13k WAV {results['service_13k_wav_s']:.2f} s, MP3 {results['service_13k_mp3_s']:.2f} s "
              "(engine skipped: no ratio)")
    print(f"TTFA 100 chars {results['ttfa_100_ms']:.0f} ms, 13k chars {results['ttfa_13k_ms']:.0f} ms: "
          f"ratio {results['ttfa_ratio']:.2f}      (target <= 1.2)")
    line = (f"short requests at {results['clients']} clients: service p50 {results['service_short_p50_ms']:.1f} ms, "
            f"{results['service_short_requests_per_s']:.1f} req/s")
    if "noop_short_p50_ms" in results:
        line += (f"; no-op graph {results['noop_short_p50_ms']:.1f} ms, "
                 f"{results['noop_short_requests_per_s']:.1f} req/s; "
                 f"service/no-op req/s {results['short_service_over_noop']:.2f} (target >= 0.9)")
    print(line)
    print(f"bytes from Synthesizer per 13k request: {results['synthesizer_bytes_13k'] / 1e6:.1f} MB "
          f"({results['synthesizer_bytes_per_audio_s']:,.0f} bytes per audio second)")


def add_ratios(results: dict) -> None:
    if "engine_processes_s" in results:
        results["service_wav_over_engine"] = results["service_13k_wav_s"] / results["engine_processes_s"]
        results["service_mp3_over_engine"] = results["service_13k_mp3_s"] / results["engine_processes_s"]
    results["ttfa_ratio"] = results["ttfa_13k_ms"] / results["ttfa_100_ms"]
    if "noop_short_requests_per_s" in results:
        results["short_service_over_noop"] = (
            results["service_short_requests_per_s"] / results["noop_short_requests_per_s"]
        )
    results["synthesizer_bytes_per_audio_s"] = results["synthesizer_bytes_13k"] / results["audio_s_13k"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=2, help="Synthesizer replicas, in both graphs")
    parser.add_argument("--repeats", type=int, default=3, help="of the engine runs and the 13k requests")
    parser.add_argument("--ttfa-repeats", type=int, default=20)
    parser.add_argument("--short-requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--skip-engine", action="store_true")
    parser.add_argument("--skip-noop", action="store_true")
    parser.add_argument("--serve-env", action="append", default=[], metavar="KEY=VALUE",
                        help="Serve's flags over the service's own, e.g. RAY_SERVE_PROXY_USE_GRPC=0")
    options = parser.parse_args()

    serve_env = set_serve_env(options.serve_env)
    print(f"serve env: {' '.join(f'{k}={v}' for k, v in serve_env.items())}")
    settings = Settings(engine="espeak", synthesizer={"min_replicas": options.replicas,
                                                      "max_replicas": options.replicas})
    chunks = service_chunks(make_text(LONG_CHARS))
    results: dict = {"replicas": options.replicas, "clients": options.clients, "serve_env": serve_env}
    if not options.skip_engine:
        results.update(measure_engine(chunks, options.repeats))

    import ray

    from tests.helpers.ports import free_port

    results["ray_cpus"] = ray_cpus(settings)
    start_local_ray(num_cpus=results["ray_cpus"])
    try:
        # One Serve instance for both graphs: a shutdown and a fresh start can race
        # (the new start finds the old controller being killed).
        port = free_port()
        if not options.skip_noop:
            noop = short_requests(deploy_noop(settings, port), options.clients, options.short_requests)
            results["noop_short_p50_ms"] = noop["p50_ms"]
            results["noop_short_requests_per_s"] = noop["requests_per_s"]
            serve.delete("noop")
        url = deploy(options.replicas, port)
        service = short_requests(url, options.clients, options.short_requests)
        results["service_short_p50_ms"] = service["p50_ms"]
        results["service_short_requests_per_s"] = service["requests_per_s"]
        results.update(measure_long(url, options.repeats, options.ttfa_repeats))
        results["synthesizer_bytes_13k"] = synthesizer_bytes(chunks)
        serve.shutdown()
    finally:
        ray.shutdown()

    add_ratios(results)
    width = max(len(key) for key in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    print()
    print_ratios(results)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
