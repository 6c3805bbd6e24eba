"""Per-key token buckets: requests per second and characters per minute.

Plain logic with an injected clock; the RateLimiter deployment keeps one
instance for the whole application, so every ingress replica draws from the
same buckets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from voicegraph.core.settings import ApiKey, AuthSettings


class TokenBucket:
    """`capacity` tokens at most, refilled at `rate` per second."""

    def __init__(self, rate: float, capacity: float, now: float):
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._updated = now

    def tokens(self, now: float) -> float:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        self._updated = max(self._updated, now)
        return self._tokens

    def wait_s(self, amount: float, now: float) -> float:
        """Seconds until `amount` tokens are there (0: now)."""
        missing = amount - self.tokens(now)
        return 0.0 if missing <= 0 else missing / self.rate

    def take(self, amount: float, now: float) -> None:
        self._tokens = self.tokens(now) - amount

    def full_in_s(self, now: float) -> float:
        return (self.capacity - self.tokens(now)) / self.rate


@dataclass(frozen=True)
class Quota:
    """One bucket's state, as the X-RateLimit-* headers report it."""

    limit: int
    remaining: int
    reset_s: float  # until the bucket is full again


@dataclass(frozen=True)
class Admission:
    allowed: bool
    retry_after_s: float  # 0 when allowed
    requests: Quota
    characters: Quota
    # Which limit refused the request: "requests" or "characters".
    exceeded: str | None = None


class RateLimiter:
    """Every key's two buckets. A request is admitted only when both have room,
    and then takes from both, so a refused request costs nothing."""

    def __init__(self, auth: AuthSettings):
        self._auth = auth
        self._buckets: dict[str, tuple[TokenBucket, TokenBucket]] = {}

    def _buckets_for(self, key: ApiKey, now: float) -> tuple[TokenBucket, TokenBucket]:
        if key.name not in self._buckets:
            limits = self._auth.limits_for(key)
            self._buckets[key.name] = (
                TokenBucket(limits.requests_per_s, limits.request_burst, now),
                TokenBucket(limits.chars_per_min / 60.0, limits.chars_per_min, now),
            )
        return self._buckets[key.name]

    def admit(self, key: ApiKey, requests: int, characters: int, now: float) -> Admission:
        request_bucket, char_bucket = self._buckets_for(key, now)
        if characters > char_bucket.capacity:
            # No wait would make room: the bucket never holds this many.
            return Admission(False, math.inf, _quota(request_bucket, now), _quota(char_bucket, now), "characters")
        waits = {"requests": request_bucket.wait_s(requests, now), "characters": char_bucket.wait_s(characters, now)}
        exceeded = max(waits, key=waits.get) if max(waits.values()) > 0 else None
        if exceeded is None:
            request_bucket.take(requests, now)
            char_bucket.take(characters, now)
        return Admission(
            allowed=exceeded is None,
            retry_after_s=waits[exceeded] if exceeded else 0.0,
            requests=_quota(request_bucket, now),
            characters=_quota(char_bucket, now),
            exceeded=exceeded,
        )


def _quota(bucket: TokenBucket, now: float) -> Quota:
    return Quota(
        limit=int(bucket.capacity),
        remaining=max(0, math.floor(bucket.tokens(now))),
        reset_s=bucket.full_in_s(now),
    )
