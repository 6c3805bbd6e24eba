"""The one retry policy: how long to wait before the next attempt, and the
loops that wait it out. Used for chunks, replica faults, the StorageActor,
uploads and callbacks."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


def backoff_s(
    attempt: int,
    initial_s: float,
    max_s: float = math.inf,
    jitter: bool = True,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1 for the first).

    The ceiling doubles from initial_s up to max_s. With jitter ("equal
    jitter") half of it is fixed and half random, so the callers that failed
    together during an outage spread out when it ends, yet none is retried at once.
    """
    # 2.0 ** 1024 overflows; long before that, any max_s has been reached.
    ceiling = min(max_s, initial_s * 2.0 ** min(attempt - 1, 1023))
    return ceiling / 2 * (1 + rand()) if jitter else ceiling


@dataclass(frozen=True)
class Retry:
    """Which failures are retried, how often, and how long apart.

    `retries` bounds the retries after the first attempt (None: no bound);
    `deadline_s` bounds the total time from the first attempt (None: no bound).
    """

    retry_on: tuple[type[BaseException], ...]
    retries: int | None = None
    initial_s: float = 0.2
    max_s: float = math.inf
    jitter: bool = False
    deadline_s: float | None = None
    never: tuple[type[BaseException], ...] = ()  # subclasses of retry_on that fail at once

    def delay_after(self, failure: BaseException, failures: int, elapsed_s: float) -> float | None:
        """The wait before the next attempt, or None when `failure` is final."""
        if not isinstance(failure, self.retry_on) or isinstance(failure, self.never):
            return None
        if self.retries is not None and failures > self.retries:
            return None
        delay = backoff_s(failures, self.initial_s, self.max_s, self.jitter)
        if self.deadline_s is not None and elapsed_s + delay > self.deadline_s:
            return None
        return delay


OnRetry = Callable[[BaseException, int, float], None]  # (failure, failures so far, delay)


def retry_call(call: Callable[[], T], policy: Retry, on_retry: OnRetry | None = None) -> T:
    """`call()` until it succeeds or `policy` gives up; then its last failure is raised."""
    start, failures = time.monotonic(), 0
    while True:
        try:
            return call()
        except policy.retry_on as exc:
            failures += 1
            delay = policy.delay_after(exc, failures, time.monotonic() - start)
            if delay is None:
                raise
            if on_retry is not None:
                on_retry(exc, failures, delay)
            time.sleep(delay)


async def retry_async(
    call: Callable[[], Awaitable[T]], policy: Retry, on_retry: OnRetry | None = None
) -> T:
    """`await call()` until it succeeds or `policy` gives up; then its last failure is raised."""
    loop = asyncio.get_running_loop()
    start, failures = loop.time(), 0
    while True:
        try:
            return await call()
        except policy.retry_on as exc:
            failures += 1
            delay = policy.delay_after(exc, failures, loop.time() - start)
            if delay is None:
                raise
            if on_retry is not None:
                on_retry(exc, failures, delay)
            await asyncio.sleep(delay)
