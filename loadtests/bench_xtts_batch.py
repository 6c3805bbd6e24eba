"""XTTS chunks decoded together against one at a time, in one process (no Ray).

    .venv/bin/python loadtests/bench_xtts_batch.py --size small              # CPU: a small random model
    .venv/bin/python loadtests/bench_xtts_batch.py --size full --concurrency 1 8 32 64 --json out.json  # GPU
    .venv/bin/python loadtests/bench_xtts_batch.py --model-dir DIR           # an existing checkpoint
    .venv/bin/python loadtests/bench_xtts_batch.py --dry-run                 # correctness only (make test)

For each concurrency N, N chunks of the same 244-character English text are
spoken by the project's own XttsEngine: together (`synthesize_batch`, what a
batched Synthesizer replica does) and one after another (`synthesize`, a
replica without batching), alternated for `--rounds` rounds. Random weights
never emit the stop token, so every chunk generates its whole token budget
at real XTTS's speech rate (`--tokens-per-char`, 1.4). Prints seconds of
audio per second for each and their ratio, peak GPU memory, and writes JSON.
A benchmark, not a test: nothing is asserted on timings.
"""

from __future__ import annotations

import argparse
import json
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="an XTTS checkpoint directory (else one is built)")
    parser.add_argument("--size", choices=sorted(SIZES), default="small", help="the random model to build")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tokens-per-char", type=float, default=1.4)
    parser.add_argument("--threads", type=int, default=2, help="torch threads on a CPU")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--dry-run", action="store_true", help="tiny model, 1 and 2 chunks, one round")
    args = parser.parse_args(argv)
    if args.dry_run:
        args.size, args.concurrency, args.rounds = "tiny", [1, 2], 1
    return args


def load(args: argparse.Namespace, scratch: Path) -> XttsEngine:
    model_dir = args.model_dir
    if model_dir is None:
        model_dir = build_tiny_xtts(scratch / args.size, **SIZES[args.size])
    settings = Settings(
        engine="xtts",
        model_dir=model_dir,
        xtts={"device": args.device, "tokens_per_char": args.tokens_per_char, "min_new_tokens": 1},
    )
    return XttsEngine(settings, num_threads=args.threads)


def timed(work) -> tuple[float, list]:
    started = time.perf_counter()
    audio = work()
    return time.perf_counter() - started, audio


def measure(engine: XttsEngine, concurrency: int, rounds: int) -> dict:
    voice = TINY_SPEAKER if TINY_SPEAKER in {v.id for v in engine.info().voices} else engine.info().voices[0].id
    chunks = [ChunkRequest(CHUNK, voice, "en", 1.0, Sampling()) for _ in range(concurrency)]
    rate = engine.info().sample_rate
    runs = {"together": [], "one_at_a_time": []}
    for round_ in range(rounds):
        # Alternated, each starting a round in turn: drift of the machine falls on both.
        order = ["together", "one_at_a_time"] if round_ % 2 == 0 else ["one_at_a_time", "together"]
        for way in order:
            if way == "together":
                seconds, audio = timed(lambda: engine.synthesize_batch(chunks))
            else:
                seconds, audio = timed(lambda: [engine.synthesize(c.text, c.voice, "en", 1.0) for c in chunks])
            runs[way].append(sum(len(pcm) for pcm in audio) / rate / seconds)
    best = {way: max(values) for way, values in runs.items()}
    return {
        "concurrency": concurrency,
        "audio_s_per_s": best,
        "runs": runs,
        "speedup": best["together"] / best["one_at_a_time"],
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        engine = load(args, Path(scratch))
        load_s = time.perf_counter() - started
        torch = engine._torch
        if engine.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        results = [measure(engine, n, args.rounds) for n in args.concurrency]
        report = {
            "model": args.model_dir.name if args.model_dir else args.size,
            "device": engine.device,
            "gpu": torch.cuda.get_device_name() if engine.device == "cuda" else None,
            "torch": torch.__version__,
            "load_s": load_s,
            "tokens_per_char": args.tokens_per_char,
            "results": results,
            "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if engine.device == "cuda" else None,
        }
    print(f"{'chunks':>6} {'together':>10} {'one at a time':>14} {'ratio':>6}   (seconds of audio per second)")
    for row in results:
        together, alone = row["audio_s_per_s"]["together"], row["audio_s_per_s"]["one_at_a_time"]
        print(f"{row['concurrency']:>6} {together:>10.2f} {alone:>14.2f} {row['speedup']:>6.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
