"""The XTTS benchmark's dry run: the code the GPU run uses, on the tiny model."""

import json

from loadtests import bench_xtts


def test_the_dry_run_measures_every_part_and_writes_json(tiny_xtts_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    report = bench_xtts.main(["--dry-run", "--model-dir", str(tiny_xtts_dir), "--json", str(out)])
    assert json.loads(out.read_text()) == report
    ways = [(row["dtype"], row["static_cache"], row["concurrency"]) for row in report["batched"]]
    # Each dtype with the dynamic cache, then the static cache in the first dtype only (compiling costs).
    assert ways == [
        (dtype, static, n) for dtype, static in [("float32", False), ("bfloat16", False), ("float32", True)] for n in [2]
    ]
    for row in report["batched"]:
        assert row["audio_s_per_s"]["together"] > 0 and row["audio_s_per_s"]["one_at_a_time"] > 0
        assert row["speedup"] == row["audio_s_per_s"]["together"] / row["audio_s_per_s"]["one_at_a_time"]
    # Two replica processes, each its own model.
    assert [row["replicas"] for row in report["packed"]] == [2] and report["packed"][0]["audio_s_per_s"] > 0
    one, two = report["streams"]
    assert (one["streams"], two["streams"]) == (1, 2)
    assert 0 < one["first_piece_s"]["median"] <= one["first_piece_s"]["max"]
    assert one["stream_cost_vs_plain"] > 0 and "stream_cost_vs_plain" not in two
    assert report["device"] == "cpu" and report["peak_gpu_memory_gib"] is None
    printed = capsys.readouterr().out
    assert "one at a time" in printed and "packed unbatched replicas  2" in printed and "first piece" in printed
