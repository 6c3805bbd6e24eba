"""The environment Ray Serve runs the graph under: its speed flags.

Serve reads these variables once, at import, in every Ray process (the
proxy, each replica, the driver), so they must be in the environment of
whatever starts Ray: `voicegraph-serve` sets them, the cluster image sets
them (cluster/Dockerfile, checked by a test), and the tests run under them.
Measured on 2 cores (docs/performance.md: Speed). This module imports nothing from Ray,
so it can be read before Ray is.
"""

from __future__ import annotations

from collections.abc import Mapping

# gRPC's own ceiling. The proxy reads a whole response and the Ingress a
# chunk's audio as one gRPC message; Serve's default of 4 MiB would refuse
# a long WAV. What a message may hold is bounded by the service's own limits
# (max_text_chars, chunk_chars), not by the transport.
GRPC_MAX_MESSAGE_BYTES = 2**31 - 1

# The Ingress takes each chunk's audio over gRPC (serve_app/ingress.py): the
# app gives its replica this limit itself, so it holds on any cluster.
INGRESS_ENV = {"RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH": str(GRPC_MAX_MESSAGE_BYTES)}

SERVE_ENV: dict[str, str] = {
    # The proxy hands HTTP requests to the Ingress over gRPC instead of Ray
    # actor calls (+30% short requests/s here). Also on in Serve's
    # RAY_SERVE_THROUGHPUT_OPTIMIZED mode, whose other flags measured no
    # better here or broke the graph (docs/performance.md: Speed).
    "RAY_SERVE_PROXY_USE_GRPC": "1",
    **INGRESS_ENV,
}


def with_serve_env(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` with SERVE_ENV added; a variable already set there is kept,
    so an operator can turn a flag off."""
    return {**SERVE_ENV, **environ}
