"""Benchmark of the response cache: a request synthesized (miss) against the
same request answered from storage (hit), per text size.

    .venv/bin/python loadtests/bench_cache.py                 # starts its own graph
    .venv/bin/python loadtests/bench_cache.py --url http://127.0.0.1:8000

Each size gets a text of its own (a fresh run tag), so the first request is a
miss whatever ran before; the X-Cache header says which each one was.
A benchmark, not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadtests.bench_graph import make_text, measure_on  # noqa: E402

_LETTERS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike oscar papa quebec".split()


def fresh_text(characters: int) -> str:
    # Words, not digits: normalisation reads digits out, which would change the length.
    tag = " ".join(_LETTERS[int(c, 16)] for c in uuid.uuid4().hex[:8])
    prefix = f"Run {tag}. "
    return prefix + make_text(characters - len(prefix))


def timed(client: httpx.Client, body: dict) -> tuple[float, str]:
    started = time.perf_counter()
    response = client.post("/v1/tts", json=body)
    response.raise_for_status()
    return time.perf_counter() - started, response.headers.get("x-cache", "off")


def measure(url: str, sizes: list[int], formats: list[str], hits: int) -> list[dict]:
    rows = []
    with httpx.Client(base_url=url, timeout=600) as client:
        timed(client, {"text": "Warm up."})
        for fmt in formats:
            for size in sizes:
                body = {"text": fresh_text(size), "format": fmt}
                miss_s, first = timed(client, body)
                time.sleep(0.5)  # the entry is written after the response
                repeats = [timed(client, body) for _ in range(hits)]
                rows.append({
                    "format": fmt,
                    "characters": size,
                    "miss_s": miss_s,
                    "hit_s": statistics.median(seconds for seconds, _ in repeats),
                    "first": first,
                    "repeats": sorted({state for _, state in repeats}),
                })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 2000, 13000])
    parser.add_argument("--formats", nargs="+", default=["wav", "mp3"])
    parser.add_argument("--hits", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=2)
    options = parser.parse_args()

    rows = measure_on(
        options.url,
        options.replicas,
        lambda url: measure(url, options.sizes, options.formats, options.hits),
        response_cache=True,
    )

    print(f"{'format':>6} {'chars':>6} {'miss s':>8} {'hit s':>8} {'miss/hit':>8}  X-Cache")
    for row in rows:
        print(
            f"{row['format']:>6} {row['characters']:>6} {row['miss_s']:>8.3f} {row['hit_s']:>8.3f} "
            f"{row['miss_s'] / row['hit_s']:>8.1f}  {row['first']} then {'/'.join(row['repeats'])}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
