"""EngineSlots: a replica's engine calls, and what a cancelled caller costs."""

import asyncio
import threading

from voicegraph.engines.slots import EngineSlots


def test_calls_past_the_slots_wait_and_a_cancelled_waiting_call_never_runs(recorded_metrics):
    async def scenario():
        slots = EngineSlots(1, "espeak")
        release = threading.Event()
        ran: list[str] = []

        def call(name: str) -> str:
            ran.append(name)
            release.wait(5)
            return name

        first = asyncio.ensure_future(slots.run(call, "first"))
        second = asyncio.ensure_future(slots.run(call, "second"))
        third = asyncio.ensure_future(slots.run(call, "third"))
        while not ran:
            await asyncio.sleep(0.01)
        second.cancel()  # waiting for the slot: dropped before it starts
        await asyncio.sleep(0.05)
        assert ran == ["first"]
        release.set()
        assert await first == "first" and await third == "third"
        assert second.cancelled()
        return slots, ran

    slots, ran = asyncio.run(scenario())
    assert ran == ["first", "third"]
    assert (slots.cancelled_waiting, slots.cancelled_running) == (1, 0)
    assert recorded_metrics.total("voicegraph_synthesizer_chunks_cancelled", stage="waiting") == 1


def test_a_call_cancelled_while_running_keeps_its_slot_until_its_thread_is_done(recorded_metrics):
    async def scenario():
        slots = EngineSlots(1, "espeak")
        release = threading.Event()
        ran: list[str] = []

        def call(name: str) -> str:
            ran.append(name)
            release.wait(5)
            if name == "first":
                raise RuntimeError("nobody hears this one")
            return name

        first = asyncio.ensure_future(slots.run(call, "first"))
        while not ran:
            await asyncio.sleep(0.01)
        first.cancel()
        await asyncio.sleep(0)
        second = asyncio.ensure_future(slots.run(call, "second"))
        await asyncio.sleep(0.05)
        # The engine is still busy with the first: the second has not started.
        assert ran == ["first"] and first.cancelled()
        release.set()
        assert await second == "second"
        return slots

    slots = asyncio.run(scenario())
    assert (slots.cancelled_waiting, slots.cancelled_running) == (0, 1)
    assert recorded_metrics.total("voicegraph_synthesizer_chunks_cancelled", stage="running") == 1


def test_as_many_calls_run_at_once_as_there_are_slots():
    async def scenario():
        slots = EngineSlots(3, "espeak")
        lock = threading.Lock()
        running, most = 0, 0

        def call() -> None:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            threading.Event().wait(0.05)
            with lock:
                running -= 1

        await asyncio.gather(*(slots.run(call) for _ in range(9)))
        return most

    assert asyncio.run(scenario()) == 3
