"""Admission by seconds of work: the chunks an ingress replica has under way,
the rate the Synthesizers get through them, and whether one more request can
finish in time.

Work is counted in characters of chunk text, which is what a chunk's cost
grows with on every engine. The rate is measured, not configured: characters
done per second of time with work under way, averaged with a half-life, so it
follows autoscaling, other ingress replicas sharing the Synthesizers, and a
change of engine or hardware without a setting to retune. Measured while the
Synthesizers are not full, it is lower than what they could do, so waits are
over-estimated then: a refusal too many rather than a client let in to time out.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    admitted: bool
    # Seconds before the work already under way is done, and before this
    # request would be: None until the first chunk has come back.
    wait_s: float | None
    finish_s: float | None
    # Refused: how long until it would be let in (Retry-After; None: no estimate).
    retry_after_s: float | None = None
    # Refused: what was exceeded (cold_start, queue_wait, deadline; too_short:
    # its deadline is shorter than its work alone takes, so waiting cannot help).
    cause: str = ""
    reason: str = ""  # refused: why, in words for the client


class Backlog:
    """One ingress replica's chunks sent and not yet back, in characters."""

    def __init__(self, half_life_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self._half_life_s = half_life_s
        self._clock = clock
        self.chars = 0
        self.chunks = 0
        self._done_chars = 0.0  # decayed
        self._busy_s = 0.0  # decayed seconds with at least one chunk under way
        self._at = clock()
        # Seconds per character of recent chunks, queueing included: the
        # fastest is what a chunk takes when it does not wait.
        self._recent: deque[float] = deque(maxlen=64)

    def _advance(self) -> None:
        now = self._clock()
        elapsed = now - self._at
        if elapsed <= 0:
            return
        decay = 0.5 ** (elapsed / self._half_life_s)
        self._done_chars *= decay
        # The interval's own seconds, each weighted by its decay since.
        busy = self._half_life_s / math.log(2) * (1 - decay) if self.chunks else 0.0
        self._busy_s = self._busy_s * decay + busy
        self._at = now

    def sent(self, chars: int) -> None:
        self._advance()
        self.chars += chars
        self.chunks += 1

    def finished(self, chars: int, seconds: float) -> None:
        self._advance()
        self.chars -= chars
        self.chunks -= 1
        self._done_chars += chars
        if chars:
            self._recent.append(seconds / chars)

    def dropped(self, chars: int) -> None:
        """A chunk that failed or was cancelled: gone from the backlog, not work done."""
        self._advance()
        self.chars -= chars
        self.chunks -= 1

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
        chunk_chars: Sequence[int],
        max_wait_s: float,
        deadline_s: float | None = None,
        cold_start_chunks: int = 16,
    ) -> Verdict:
        """Whether a request of these chunks can start within `max_wait_s`
        and finish within `deadline_s` (seconds from now, None: no deadline).
        Until a chunk has come back there is no rate, and at most
        `cold_start_chunks` are let in (one request alone always is)."""
        rate = self.chars_per_s()
        if rate is None:
            if self.chunks and self.chunks + len(chunk_chars) > cold_start_chunks:
                return Verdict(
                    False, None, None, cause="cold_start",
                    reason=f"{self.chunks} chunks under way and no measure of speed yet",
                )
            return Verdict(True, None, None)
        wait_s = self.chars / rate
        finish_s = (self.chars + sum(chunk_chars)) / rate
        if deadline_s is not None:
            # A lower bound: no request is done before its longest chunk is.
            alone_s = max(chunk_chars, default=0) * min(self._recent, default=0.0)
            if alone_s > deadline_s:
                return Verdict(
                    False, wait_s, finish_s, cause="too_short",
                    reason=f"its longest chunk alone takes about {alone_s:.1f} s, "
                    f"more than the {deadline_s:.1f} s left before its deadline",
                )
            # With nothing ahead, waiting would not help: let the deadline stop it.
            if finish_s > deadline_s and self.chunks:
                return Verdict(
                    False, wait_s, finish_s, retry_after_s=finish_s - deadline_s, cause="deadline",
                    reason=f"it would finish in about {finish_s:.1f} s, after its deadline in {deadline_s:.1f} s",
                )
        if wait_s > max_wait_s:
            return Verdict(
                False, wait_s, finish_s, retry_after_s=wait_s - max_wait_s, cause="queue_wait",
                reason=f"it would wait about {wait_s:.1f} s to start, the limit is {max_wait_s:g} s",
            )
        return Verdict(True, wait_s, finish_s)
