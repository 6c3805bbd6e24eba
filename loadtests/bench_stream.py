"""Benchmark of /v1/tts/stream: time to first audio against text length.

    .venv/bin/python loadtests/bench_stream.py                # starts its own graph
    .venv/bin/python loadtests/bench_stream.py --url http://127.0.0.1:8000

Measures, per text size and format, the time from sending the request to the
first byte of *audio* (a WAV header does not count), to the last byte, and the
same request on /v1/tts (whole file) for comparison. Streaming's first audio
should not grow with the text: the ratio line says how much it does.
The graph this starts has the response cache off, so the whole-file repeats
are synthesized (a --url service should run with VG_RESPONSE_CACHE__ENABLED=false).
A benchmark, not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadtests.bench_graph import make_text, measure_on  # noqa: E402

_HEADER_BYTES = {"wav": 44, "pcm": 0, "mp3": 0, "opus": 0}


def first_audio(client: httpx.Client, text: str, fmt: str) -> tuple[float, float]:
    """(seconds to the first audio byte, seconds to the end) of one stream."""
    started = time.perf_counter()
    first = None
    received = 0
    with client.stream("POST", "/v1/tts/stream", json={"text": text, "format": fmt}) as response:
        response.raise_for_status()
        for piece in response.iter_raw():
            received += len(piece)
            if first is None and received > _HEADER_BYTES[fmt]:
                first = time.perf_counter() - started
    return first, time.perf_counter() - started


def whole(client: httpx.Client, text: str, fmt: str) -> float:
    started = time.perf_counter()
    client.post("/v1/tts", json={"text": text, "format": fmt}).raise_for_status()
    return time.perf_counter() - started


def measure(url: str, sizes: list[int], formats: list[str], repeats: int) -> list[dict]:
    rows = []
    with httpx.Client(base_url=url, timeout=600) as client:
        first_audio(client, "Warm up.", "mp3")
        for fmt in formats:
            for size in sizes:
                text = make_text(size)
                runs = [first_audio(client, text, fmt) for _ in range(repeats)]
                rows.append({
                    "format": fmt,
                    "characters": size,
                    "first_audio_s": statistics.median(r[0] for r in runs),
                    "stream_total_s": statistics.median(r[1] for r in runs),
                    "whole_file_s": statistics.median(whole(client, text, fmt) for _ in range(repeats)),
                })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 13000])
    parser.add_argument("--formats", nargs="+", default=["pcm", "mp3"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=2)
    options = parser.parse_args()

    rows = measure_on(
        options.url, options.replicas, lambda url: measure(url, options.sizes, options.formats, options.repeats)
    )

    print(f"{'format':>6} {'chars':>6} {'first audio s':>13} {'stream end s':>12} {'whole file s':>12}")
    for row in rows:
        print(
            f"{row['format']:>6} {row['characters']:>6} {row['first_audio_s']:>13.3f} "
            f"{row['stream_total_s']:>12.3f} {row['whole_file_s']:>12.3f}"
        )
    for fmt in options.formats:
        by_size = [r for r in rows if r["format"] == fmt]
        short, longest = by_size[0], by_size[-1]
        print(
            f"{fmt}: first audio at {longest['characters']} chars / at {short['characters']} chars = "
            f"{longest['first_audio_s'] / short['first_audio_s']:.2f}; "
            f"whole file / first streamed audio at {longest['characters']} chars = "
            f"{longest['whole_file_s'] / longest['first_audio_s']:.1f}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
