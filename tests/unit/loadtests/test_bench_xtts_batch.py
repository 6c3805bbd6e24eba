"""The batching benchmark's dry run: the code the GPU run uses, on the tiny model."""

import json

from loadtests import bench_xtts_batch


def test_the_dry_run_measures_both_ways_and_writes_json(tiny_xtts_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    report = bench_xtts_batch.main(["--dry-run", "--model-dir", str(tiny_xtts_dir), "--json", str(out)])
    assert json.loads(out.read_text()) == report
    assert [row["concurrency"] for row in report["results"]] == [1, 2]
    for row in report["results"]:
        assert row["audio_s_per_s"]["together"] > 0 and row["audio_s_per_s"]["one_at_a_time"] > 0
        assert row["speedup"] == row["audio_s_per_s"]["together"] / row["audio_s_per_s"]["one_at_a_time"]
    assert report["device"] == "cpu" and report["peak_gpu_memory_gib"] is None
    assert "one at a time" in capsys.readouterr().out
