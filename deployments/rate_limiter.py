"""The RateLimiter deployment: every API key's buckets, in one place.

One replica, never more: each ingress replica asks it, so a key's limit holds
for the whole application however many ingress replicas serve it. A restart
starts every bucket full, which errs toward letting clients through.
"""

from __future__ import annotations

import time

from ray import serve

from voicegraph.access import rate_limit
from voicegraph.core.settings import ApiKey, Settings


@serve.deployment(name="RateLimiter", num_replicas=1, max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0.05})
class RateLimiter:
    def __init__(self, settings: Settings):
        self._limits = rate_limit.RateLimiter(settings.auth)

    def admit(self, key: ApiKey, requests: int, characters: int) -> rate_limit.Admission:
        return self._limits.admit(key, requests, characters, time.monotonic())
