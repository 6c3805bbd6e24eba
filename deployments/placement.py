"""Where a replica runs and what Ray gave it: for operators and placement checks."""

from __future__ import annotations

from typing import Any

import ray
from ray import serve


def replica_placement() -> dict[str, Any]:
    """The calling replica's id, node and assigned resources (call inside a replica)."""
    context = ray.get_runtime_context()
    return {
        "replica_id": serve.get_replica_context().replica_id.unique_id,
        "node_id": context.get_node_id(),
        "assigned_resources": context.get_assigned_resources(),
        "gpu_ids": [str(gpu) for gpu in context.get_accelerator_ids().get("GPU", [])],
    }
