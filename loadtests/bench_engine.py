"""Benchmark of one engine: load time, real-time factor, first streamed audio, chunks/s.

    .venv/bin/python loadtests/bench_engine.py                       # the configured engine (VG_*)
    .venv/bin/python loadtests/bench_engine.py --engine xtts --model-dir DIR
    .venv/bin/python loadtests/bench_engine.py --engine xtts --tiny  # builds a tiny random checkpoint
    .venv/bin/python loadtests/bench_engine.py --engine piper --sizes 100 200 300 400

Measures the engine in this process (load, RTF per chunk, time to first
streamed piece, seconds per sentence-aligned chunk of each --sizes length:
what a chunk size costs in time to first audio), then chunks per second
through Synthesizer deployments with 1 and N replicas on a private local Ray. Prints a table, then JSON. A benchmark,
not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadtests.bench_graph import start_local_ray  # noqa: E402
from voicegraph.core.settings import Settings  # noqa: E402
from voicegraph.engines import build_engine  # noqa: E402
from voicegraph.text.chunking import chunk_text  # noqa: E402

CHUNK = "The service splits long texts into chunks like this one and speaks each of them on a replica."


def in_process(settings: Settings, threads: int, repeats: int, sizes: list[int]) -> dict:
    started = time.perf_counter()
    engine = build_engine(settings, num_threads=threads)
    load_s = time.perf_counter() - started
    info = engine.info()
    voice, language = info.voices[0].id, info.default_language
    rtfs = []
    for _ in range(repeats):
        started = time.perf_counter()
        pcm = engine.synthesize(CHUNK, voice, language, 1.0)
        rtfs.append((time.perf_counter() - started) / max(len(pcm) / info.sample_rate, 1e-9))
    started = time.perf_counter()
    stream = engine.synthesize_stream(CHUNK, voice, language, 1.0)
    next(stream)
    first_audio_s = time.perf_counter() - started
    for _ in stream:
        pass
    row = {"engine": info.engine, "model": info.model, "load_s": load_s,
           "rtf_median": statistics.median(rtfs), "first_stream_audio_s": first_audio_s}
    long_text = " ".join([CHUNK] * 10)
    for size in sizes:
        chunk = chunk_text(long_text, size)[0].text
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            engine.synthesize(chunk, voice, language, 1.0)
            times.append(time.perf_counter() - started)
        row[f"chunk_{size}_chars_s"] = statistics.median(times)
    return row


def through_serve(settings: Settings, replicas: int, chunks: int) -> float:
    from ray import serve

    from deployments.synthesizer import Synthesizer

    options = {"num_cpus": settings.synthesizer.num_cpus}
    app = Synthesizer.options(num_replicas=replicas, max_ongoing_requests=4, ray_actor_options=options).bind(
        settings, settings.engine
    )
    handle = serve.run(app, name=f"bench-{replicas}", route_prefix=None)
    voice = handle.describe.remote().result().voices[0].id
    handle.synthesize.remote(CHUNK, voice, "en", 1.0).result()  # every replica is warm by now
    started = time.perf_counter()
    with ThreadPoolExecutor(chunks) as pool:
        list(pool.map(lambda _: handle.synthesize.remote(CHUNK, voice, "en", 1.0).result(), range(chunks)))
    elapsed = time.perf_counter() - started
    serve.delete(f"bench-{replicas}")
    return chunks / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["piper", "espeak", "xtts"])
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--tiny", action="store_true", help="build and use a tiny random XTTS checkpoint")
    parser.add_argument("--replicas", type=int, default=2, help="N for the 1-vs-N comparison")
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per engine")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="*", default=[], help="chunk sizes (characters) to time")
    options = parser.parse_args()

    overrides = {}
    if options.engine:
        overrides["engine"] = options.engine
    if options.tiny:
        from voicegraph.engines.xtts_tiny import build_tiny_xtts

        options.model_dir = build_tiny_xtts(Path(tempfile.mkdtemp(prefix="tiny-xtts-")))
    if options.model_dir:
        overrides["model_dir"] = options.model_dir
    settings = Settings(**overrides)
    if settings.engine == "xtts" and options.tiny:
        # The tiny model has no speakers: clone its voice from eSpeak speech.
        import soundfile

        from voicegraph.engines.espeak import EspeakEngine

        clip = Path(tempfile.mkdtemp()) / "reference.wav"
        soundfile.write(clip, EspeakEngine().synthesize(CHUNK, "deep", "en-us", 1.0), 22050)
        settings.xtts.voice_clips = {"narrator": [clip]}

    row = in_process(settings, options.threads, options.repeats, options.sizes)

    import ray

    start_local_ray()
    try:
        row["chunks_per_s_1"] = through_serve(settings, 1, options.chunks)
        row[f"chunks_per_s_{options.replicas}"] = through_serve(settings, options.replicas, options.chunks)
    finally:
        ray.shutdown()
    row["replica_speedup"] = row[f"chunks_per_s_{options.replicas}"] / row["chunks_per_s_1"]

    width = max(len(key) for key in row)
    for key, value in row.items():
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    print(json.dumps(row, default=str))


if __name__ == "__main__":
    main()
