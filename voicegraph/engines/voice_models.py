"""Voice models a replica holds loaded, least recently used dropped first.

For engines whose every voice is its own model (Piper: 20-120 MB each), so a
replica holds a few of many. Serve's model multiplexing routes a voice's
chunks to replicas that hold it and asks for loads and drops; this keeps the
same bound for calls that come another way (health checks, benchmarks), and
counts what loading costs.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from voicegraph.core import metrics

T = TypeVar("T")


class VoiceModels(Generic[T]):
    def __init__(self, capacity: int, load: Callable[[str], T], engine: str):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._load = load
        self._engine = engine
        self._held: OrderedDict[str, T] = OrderedDict()
        # Bumped on every load: a drop meant for an earlier load of a key
        # (Serve's, arriving late) leaves a newer one alone.
        self._generation: dict[str, int] = {}
        self._lock = threading.Lock()
        self.loads = 0
        self.evictions = 0
        self.load_seconds: dict[str, float] = {}  # key → its last load's time

    def get(self, key: str) -> tuple[T, int]:
        """The model for `key`, loaded if it is not held, and its generation."""
        with self._lock:
            if key in self._held:
                self._held.move_to_end(key)
                return self._held[key], self._generation[key]
            started = time.perf_counter()
            model = self._load(key)
            elapsed_s = time.perf_counter() - started
            self.loads += 1
            self.load_seconds[key] = elapsed_s
            metrics.count("voicegraph_voice_loads", engine=self._engine)
            metrics.observe("voicegraph_voice_load_s", elapsed_s, engine=self._engine)
            self._held[key] = model
            self._generation[key] = self._generation.get(key, 0) + 1
            while len(self._held) > self.capacity:
                self._drop_locked(next(iter(self._held)))
            return model, self._generation[key]

    def drop(self, key: str, generation: int | None = None) -> None:
        """Let go of `key` (of that generation only, when given)."""
        with self._lock:
            if key in self._held and generation in (None, self._generation[key]):
                self._drop_locked(key)

    def _drop_locked(self, key: str) -> None:
        del self._held[key]
        self.evictions += 1
        metrics.count("voicegraph_voice_evictions", engine=self._engine)

    def held(self) -> list[str]:
        """Keys held, least recently used first."""
        with self._lock:
            return list(self._held)

    def most_recent(self) -> str | None:
        with self._lock:
            return next(reversed(self._held), None)
