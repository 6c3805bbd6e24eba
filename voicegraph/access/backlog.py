"""Admission by seconds of work: the work an ingress replica has under way,
the rate it gets done at, and whether one more request can finish in time.

Work is counted in characters of text, which is what its cost grows with on
every engine, from when it is sent until its audio is ready. The rate is
measured, not configured: characters done per second of the time that
finished work covered, averaged with a half-life, so it follows autoscaling,
other ingress replicas sharing the Synthesizers, and a change of engine or
hardware without a setting to retune. Measured while the graph is not full, it is lower than
what the graph could do, so waits are over-estimated then: a refusal too many
rather than a client let in to time out.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    admitted: bool
    # Seconds before the work already under way is done, and before this
    # request would be: None until some work has come back.
    wait_s: float | None
    finish_s: float | None
    # Refused: how long until it would be let in (Retry-After; None: no estimate).
    retry_after_s: float | None = None
    # Refused: what was exceeded (cold_start, queue_wait, deadline; too_short:
    # its deadline is shorter than its work alone takes, so waiting cannot help).
    cause: str = ""
    reason: str = ""  # refused: why, in words for the client


class Work:
    """One piece of admitted work, in the backlog until it finishes or is
    dropped. Whole: a request's chunks may all be back while its audio is
    still being encoded, so counting them off as they come back would hide
    work still to do."""

    def __init__(self, backlog: Backlog, chars: int):
        self._backlog = backlog
        self.chars = chars
        self._started = backlog._clock()
        self._ended = False

    def _end(self) -> bool:
        """Whether this call ends it: work ends once, by finish or drop."""
        ended, self._ended = self._ended, True
        return not ended

    def finish(self) -> None:
        if not self._end():
            return
        backlog = self._backlog
        backlog._advance()
        backlog.chars -= self.chars
        backlog.items -= 1
        now = backlog._clock()
        seconds = now - self._started
        # Credited as if done evenly over its time, so its characters decay
        # as the seconds they took do: whole at the end, they would inflate the speed.
        backlog._done_chars += self.chars * backlog._decayed_share(seconds)
        # Its time becomes busy time where no finished work covered it yet.
        # Only finished work counts: the time of work dropped (a client that
        # left, a cache hit, a cancelled job) or still under way says nothing
        # of the speed, and counting it would drag the speed towards zero.
        uncovered_s = now - max(self._started, backlog._covered_until)
        if uncovered_s > 0:
            backlog._busy_s += uncovered_s * backlog._decayed_share(uncovered_s)
        backlog._covered_until = now
        if self.chars:
            backlog._recent.append(seconds / self.chars)

    def drop(self) -> None:
        """Failed, cancelled or not needed: gone from the backlog, and not work done."""
        if not self._end():
            return
        backlog = self._backlog
        backlog._advance()
        backlog.chars -= self.chars
        backlog.items -= 1


class Backlog:
    """One ingress replica's work under way, in characters of text."""

    def __init__(self, half_life_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self._half_life_s = half_life_s
        self._clock = clock
        self.chars = 0  # not yet done
        self.items = 0  # pieces of work under way
        # Clients' requests under way, judged by judge(): jobs' work is in
        # the backlog but not here, as their runners bound their own number.
        self.requests = 0
        self._done_chars = 0.0  # decayed
        self._busy_s = 0.0  # decayed seconds that finished work covered
        self._at = clock()
        self._covered_until = self._at  # the latest finish so far
        # Seconds per character of recent work, queueing included: the
        # fastest is what work takes when it does not wait.
        self._recent: deque[float] = deque(maxlen=64)

    def _advance(self) -> None:
        now = self._clock()
        elapsed = now - self._at
        if elapsed <= 0:
            return
        decay = 0.5 ** (elapsed / self._half_life_s)
        self._done_chars *= decay
        self._busy_s *= decay
        self._at = now

    def _decayed_share(self, seconds: float) -> float:
        """The weight now of the last `seconds`, each decayed since, per second."""
        if seconds <= 0:
            return 1.0
        return self._half_life_s / math.log(2) * (1 - 0.5 ** (seconds / self._half_life_s)) / seconds

    def start(self, chars: int) -> Work:
        self._advance()
        self.chars += chars
        self.items += 1
        return Work(self, chars)

    @contextmanager
    def request(self) -> Iterator[None]:
        """A client's request, let in, until it is answered or given up."""
        self.requests += 1
        try:
            yield
        finally:
            self.requests -= 1

    def chars_per_s(self) -> float | None:
        self._advance()
        if self._done_chars <= 0 or self._busy_s <= 0:
            return None
        return self._done_chars / self._busy_s

    def wait_s(self) -> float | None:
        """Seconds until the work under way is done; None before any measure."""
        rate = self.chars_per_s()
        return None if rate is None else self.chars / rate

    def judge(
        self,
        chars: int,
        max_wait_s: float,
        deadline_s: float | None = None,
        cold_start_requests: int = 8,
        margin: float = 1.0,
    ) -> Verdict:
        """Whether `chars` more characters of work can be done within
        `deadline_s` (seconds from now), or, from a client that gave no
        deadline, start within `max_wait_s`: a client that says how long it
        waits is let in as long as its answer comes in time.
        Until some work has come back there is no rate, and at most
        `cold_start_requests` clients' requests are under way at once. Waits are
        estimated `margin` times longer than the measured speed says: the
        speed a moment ago is not quite the speed to come."""
        rate = self.chars_per_s()
        if rate is None:
            if self.requests >= cold_start_requests:
                return Verdict(
                    False, None, None, cause="cold_start",
                    reason=f"{self.requests} requests under way and no measure of speed yet",
                )
            return Verdict(True, None, None)
        wait_s = margin * self.chars / rate
        finish_s = margin * (self.chars + chars) / rate
        if deadline_s is not None:
            # At the fastest pace seen lately: what it takes with nothing ahead.
            alone_s = chars * min(self._recent, default=0.0)
            if alone_s > deadline_s:
                return Verdict(
                    False, wait_s, finish_s, cause="too_short",
                    reason=f"with nothing ahead of it, it takes about {alone_s:.1f} s, "
                    f"more than the {deadline_s:.1f} s left before its deadline",
                )
            # With nothing ahead, waiting would not help: let the deadline stop it.
            if finish_s > deadline_s and self.items:
                return Verdict(
                    False, wait_s, finish_s, retry_after_s=finish_s - deadline_s, cause="deadline",
                    reason=f"it would finish in about {finish_s:.1f} s, after its deadline in {deadline_s:.1f} s",
                )
        elif wait_s > max_wait_s:
            return Verdict(
                False, wait_s, finish_s, retry_after_s=wait_s - max_wait_s, cause="queue_wait",
                reason=f"it would wait about {wait_s:.1f} s to start, the limit is {max_wait_s:g} s",
            )
        return Verdict(True, wait_s, finish_s)
