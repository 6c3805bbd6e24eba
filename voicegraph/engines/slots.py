"""How many engine calls a replica runs at once, and what a cancelled caller costs.

An engine call runs in a thread and cannot be stopped halfway, so the chunks
past the first `size` wait here, where a cancellation (the client left, its
deadline passed) drops them before they cost anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from voicegraph.core import metrics

T = TypeVar("T")


class EngineSlots:
    def __init__(self, size: int, engine: str):
        self._free = asyncio.Semaphore(size)
        self._engine = engine
        self.cancelled_waiting = 0  # dropped before they started: no work spent
        self.cancelled_running = 0  # finished for a caller that had left

    async def run(self, call: Callable[..., T], *args) -> T:
        try:
            await self._free.acquire()
        except asyncio.CancelledError:
            self.cancelled_waiting += 1
            metrics.count("voicegraph_synthesizer_chunks_cancelled", engine=self._engine, stage="waiting")
            raise
        work = asyncio.ensure_future(asyncio.to_thread(call, *args))
        # The slot is free when the thread is, not when the caller gives up.
        work.add_done_callback(lambda _: self._free.release())
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            if not work.done():
                self.cancelled_running += 1
                metrics.count("voicegraph_synthesizer_chunks_cancelled", engine=self._engine, stage="running")
                work.add_done_callback(_retrieve_exception)
            raise


def _retrieve_exception(work: asyncio.Future) -> None:
    # Nobody awaits a cancelled caller's chunk: its error must not be logged as unretrieved.
    if not work.cancelled():
        work.exception()
