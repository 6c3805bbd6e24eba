"""Fractional GPUs: four Synthesizer replicas share the one GPU node's GPU."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_four_replicas_pack_onto_the_gpu_node(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tests.integration.gpu_packing_check", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=400,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("PACKING_REPORT ")]
    report = json.loads(line.removeprefix("PACKING_REPORT "))
    replicas = report["replicas"]
    assert len(replicas) == 4
    for replica in replicas:
        assert replica["node_id"] == report["gpu_node_id"] != report["head_node_id"]
        assert replica["assigned_resources"]["GPU"] == pytest.approx(0.25)
        assert replica["gpu_ids"] == ["0"]  # all four share the node's one GPU
