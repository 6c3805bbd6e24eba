"""Run by test_gpu_packing.py in its own process (one Ray connection per process).

A simulated two-node cluster: the head is CPU-only, the worker declares one GPU.
Deploys the graph with four Synthesizer replicas and `gpus_per_replica: auto`,
then prints, as JSON, where each replica landed and what Ray assigned it.
"""

import json
import sys

import ray
from ray import serve
from ray.cluster_utils import Cluster

from serve_app.app import build_app
from tests.helpers.ports import free_port


def main(storage_root: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "num_gpus": 0})
    gpu_node = cluster.add_node(num_cpus=4, num_gpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
        settings = {
            "engine": "espeak",
            "storage_root": storage_root,
            "synthesizer": {"min_replicas": 4, "max_replicas": 4, "gpus_per_replica": "auto"},
        }
        serve.run(build_app(settings), name="voicegraph", route_prefix="/")
        synthesizer = serve.get_deployment_handle("Synthesizer-espeak", "voicegraph")
        replicas = {}
        for _ in range(400):
            info = synthesizer.replica_info.remote().result()
            replicas[info["replica_id"]] = info
            if len(replicas) == 4:
                break
        print("PACKING_REPORT " + json.dumps({
            "gpu_node_id": gpu_node.node_id,
            "head_node_id": cluster.head_node.node_id,
            "replicas": list(replicas.values()),
        }))
    finally:
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
