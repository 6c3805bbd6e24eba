"""XTTS on one device, without Ray: what decides the cost of a GPU deployment.

    .venv/bin/python loadtests/bench_xtts.py --size small              # CPU: a small random model
    .venv/bin/python loadtests/bench_xtts.py --gpu --json out.json     # the lent GPU machine, under 6 minutes
    .venv/bin/python loadtests/bench_xtts.py --model-dir DIR           # an existing checkpoint
    .venv/bin/python loadtests/bench_xtts.py --dry-run                 # correctness only (make test)

Every chunk is the same 244-character English text, spoken by the project's
own XttsEngine. Random weights never emit the stop token, so each chunk
generates its whole token budget at real XTTS's speech rate
(`--tokens-per-char`, 1.4). Three parts, each in seconds of audio per second:
- batched: N chunks decoded together (`synthesize_batch`, what a batched
  Synthesizer replica does) against one at a time (`synthesize`), alternated
  for `--rounds` rounds, for each `--dtype` and with and without the static
  KV cache (`--static-cache`, which lets transformers capture CUDA graphs);
- packed: N processes, each a replica without batching doing one chunk at a
  time (what fractional GPUs give without batching);
- streams: time to the first piece at 1 and at N streams decoded together
  (`stream_batch`), and what a whole stream costs against the plain call.
Prints a table per part, peak GPU memory, and writes JSON. A benchmark, not a
test: nothing is asserted on timings.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voicegraph.core.settings import Settings  # noqa: E402
from voicegraph.engines.base import ChunkRequest, Sampling  # noqa: E402
from voicegraph.engines.xtts import XttsEngine  # noqa: E402
from voicegraph.engines.xtts_tiny import SIZES, TINY_SPEAKER, build_tiny_xtts  # noqa: E402

# 244 characters: a full English XTTS chunk.
CHUNK = (
    "The service splits long texts into chunks like this one and speaks each of them on a replica; "
    "with batching, one replica decodes many chunks at once, so the graphics card does useful work "
    "instead of waiting for the next kernel launch."
)
# One at a time, the rate does not depend on how many chunks wait: this many are enough.
ALONE_CHUNKS = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="an XTTS checkpoint directory (else one is built)")
    parser.add_argument("--size", choices=sorted(SIZES), default="small", help="the random model to build")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8], help="chunks decoded together")
    parser.add_argument("--dtype", nargs="+", default=["float32"], choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--static-cache", nargs="+", type=int, default=[0], choices=[0, 1], help="0, 1 or both")
    parser.add_argument("--packed", type=int, nargs="*", default=[], help="unbatched replica processes")
    parser.add_argument("--streams", type=int, nargs="*", default=[1], help="concurrent streams")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tokens-per-char", type=float, default=1.4)
    parser.add_argument("--threads", type=int, default=2, help="torch threads on a CPU")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--gpu", action="store_true", help="the full plan for the lent GPU machine")
    parser.add_argument("--dry-run", action="store_true", help="tiny model, every part at its smallest")
    args = parser.parse_args(argv)
    if args.gpu:
        args.size, args.device, args.rounds = "full", "cuda", 1
        args.concurrency, args.packed, args.streams = [1, 8, 32, 64], [1, 4, 8], [1, 32]
        args.dtype, args.static_cache = ["float32", "bfloat16"], [0, 1]
    if args.dry_run:
        args.size, args.concurrency, args.rounds = "tiny", [2], 1
        args.dtype, args.static_cache, args.packed, args.streams = ["float32", "bfloat16"], [0, 1], [2], [1, 2]
    return args


def load(args: argparse.Namespace, model_dir: Path, dtype: str = "float32", static_cache: bool = False):
    settings = Settings(
        engine="xtts",
        model_dir=model_dir,
        xtts={
            "device": args.device,
            "dtype": dtype,
            "static_cache": static_cache,
            "tokens_per_char": args.tokens_per_char,
            "min_new_tokens": 1,
        },
    )
    return XttsEngine(settings, num_threads=args.threads)


def voice_of(engine: XttsEngine) -> str:
    voices = [v.id for v in engine.info().voices]
    return TINY_SPEAKER if TINY_SPEAKER in voices else voices[0]


def audio_rate(engine: XttsEngine, work) -> float:
    started = time.perf_counter()
    audio = work()
    return sum(len(pcm) for pcm in audio) / engine.info().sample_rate / (time.perf_counter() - started)


def measure_batched(engine: XttsEngine, concurrency: list[int], rounds: int) -> list[dict]:
    chunk = ChunkRequest(CHUNK, voice_of(engine), "en", 1.0, Sampling())
    runs = {n: [] for n in concurrency}
    alone = []
    for round_ in range(rounds):
        # Alternated, each starting a round in turn: drift of the machine falls on both.
        ways = ["alone", *concurrency]
        for way in ways if round_ % 2 == 0 else reversed(ways):
            if way == "alone":
                alone.append(audio_rate(engine, lambda: [engine.synthesize(CHUNK, chunk.voice, "en", 1.0)
                                                         for _ in range(ALONE_CHUNKS)]))
            else:
                runs[way].append(audio_rate(engine, lambda n=way: engine.synthesize_batch([chunk] * n)))
    one_at_a_time = max(alone)
    return [
        {
            "concurrency": n,
            "audio_s_per_s": {"together": max(runs[n]), "one_at_a_time": one_at_a_time},
            "runs": {"together": runs[n], "one_at_a_time": alone},
            "speedup": max(runs[n]) / one_at_a_time,
        }
        for n in concurrency
    ]


def _packed_replica(args, model_dir, barrier, results) -> None:
    engine = load(args, model_dir)
    voice = voice_of(engine)
    barrier.wait()
    started = time.monotonic()
    pcm = engine.synthesize(CHUNK, voice, "en", 1.0)
    results.put((len(pcm) / engine.info().sample_rate, started, time.monotonic()))


def measure_packed(args: argparse.Namespace, model_dir: Path, replicas: int) -> dict:
    """`replicas` processes, each its own model, one chunk each, started together."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(replicas), context.Queue()
    processes = [
        context.Process(target=_packed_replica, args=(args, model_dir, barrier, results)) for _ in range(replicas)
    ]
    for process in processes:
        process.start()
    done = [results.get(timeout=900) for _ in processes]
    for process in processes:
        process.join()
    wall = max(end for _, _, end in done) - min(start for _, start, _ in done)
    return {"replicas": replicas, "audio_s_per_s": sum(seconds for seconds, _, _ in done) / wall}


def measure_streams(engine: XttsEngine, streams: int) -> dict:
    """`streams` chunks streamed together (`stream_batch`, what a Synthesizer
    replica does with concurrent streams): the time to each one's first
    piece; for one stream, also the whole stream against the plain call."""
    voice = voice_of(engine)
    chunk = ChunkRequest(CHUNK, voice, "en", 1.0, Sampling())
    firsts: list[float | None] = [None] * streams
    started = time.perf_counter()
    steps = engine.stream_batch([chunk] * streams)
    for step in steps:
        for index, piece in enumerate(step):
            if firsts[index] is None and piece is not None and len(piece):
                firsts[index] = time.perf_counter() - started
        if all(first is not None for first in firsts):
            steps.close()
            break
    row = {"streams": streams, "first_piece_s": {"median": statistics.median(firsts), "max": max(firsts)}}
    if streams == 1:
        streamed = audio_rate(engine, lambda: list(engine.synthesize_stream(CHUNK, voice, "en", 1.0)))
        plain = audio_rate(engine, lambda: [engine.synthesize(CHUNK, voice, "en", 1.0)])
        row["stream_cost_vs_plain"] = plain / streamed
    return row


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        model_dir = args.model_dir or build_tiny_xtts(Path(scratch) / args.size, **SIZES[args.size])
        import torch

        report = {
            "model": args.model_dir.name if args.model_dir else args.size,
            "device": None,
            "gpu": None,
            "torch": torch.__version__,
            "build_s": time.perf_counter() - started,
            "tokens_per_char": args.tokens_per_char,
            "batched": [],
            "packed": [],
            "streams": [],
            "peak_gpu_memory_gib": None,
        }
        # The parts in the order they matter, the JSON rewritten after each:
        # a run cut short by its time limit still tells what it measured.
        ways = [(dtype, False) for dtype in args.dtype if 0 in args.static_cache]
        ways += [(args.dtype[0], True)] if 1 in args.static_cache else []  # compiling costs: one dtype
        for number, (dtype, static_cache) in enumerate(ways):
            measure_engine(args, model_dir, dtype, static_cache, report, with_streams=number == 0)
            save(args, report)
            if number == 0:
                report["packed"] = [measure_packed(args, model_dir, n) for n in args.packed]
                save(args, report)
    print_report(report)
    return report


def measure_engine(args, model_dir: Path, dtype: str, static_cache: bool, report: dict, with_streams: bool) -> None:
    engine = load(args, model_dir, dtype, static_cache)
    torch = engine._torch
    on_gpu = engine.device == "cuda"
    report["device"] = engine.device
    if on_gpu:
        report["gpu"] = torch.cuda.get_device_name()
        torch.cuda.reset_peak_memory_stats()
    rows = measure_batched(engine, args.concurrency, args.rounds)
    report["batched"] += [{"dtype": dtype, "static_cache": static_cache, **row} for row in rows]
    if with_streams:
        report["streams"] = [measure_streams(engine, n) for n in args.streams]
    if on_gpu:
        memory = report["peak_gpu_memory_gib"] or {}
        memory[f"{dtype}, static_cache={static_cache}"] = torch.cuda.max_memory_allocated() / 2**30
        report["peak_gpu_memory_gib"] = memory


def save(args: argparse.Namespace, report: dict) -> None:
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def print_report(report: dict) -> None:
    print(f"{report['model']} on {report['gpu'] or report['device']}   (seconds of audio per second)")
    print(f"{'dtype':>9} {'static':>6} {'chunks':>6} {'together':>9} {'one at a time':>14} {'ratio':>6}")
    for row in report["batched"]:
        rates = row["audio_s_per_s"]
        print(
            f"{row['dtype']:>9} {row['static_cache']!s:>6} {row['concurrency']:>6} {rates['together']:>9.2f}"
            f" {rates['one_at_a_time']:>14.2f} {row['speedup']:>6.2f}"
        )
    for row in report["packed"]:
        print(f"packed unbatched replicas {row['replicas']:>2}: {row['audio_s_per_s']:.2f}")
    for row in report["streams"]:
        cost = ""
        if "stream_cost_vs_plain" in row:
            cost = f", a whole stream costs {row['stream_cost_vs_plain']:.2f}x the plain call"
        print(
            f"streams {row['streams']:>2}: first piece median {row['first_piece_s']['median']:.3f} s,"
            f" max {row['first_piece_s']['max']:.3f} s{cost}"
        )
    if report["peak_gpu_memory_gib"]:
        print("peak GPU memory (GiB):", json.dumps(report["peak_gpu_memory_gib"]))


if __name__ == "__main__":
    main()
