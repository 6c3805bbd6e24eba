"""The Synthesizer deployments: one per engine served (`Synthesizer-<engine>`),
each replica holding that engine; chunk + voice → PCM.

Where an engine's voices are models of their own (Piper), a replica loads
the ones it is asked for through Serve's model multiplexing: the caller names
the voice's model (`multiplexed_model_id`), Serve routes the chunk to a
replica that holds it where one can take it, and each replica holds at most
`piper.max_voices_per_replica`, dropping the least recently used.

Where the engine can decode chunks together (XTTS), concurrent chunk calls on
a replica, from any requests, are gathered by Serve's `@serve.batch`; a
chunk whose caller is cancelled while it waits is left out of its batch.
Other engines run `synthesizer.max_concurrent_chunks` calls at once and the
rest wait their turn, where a cancelled caller's chunk is never started.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import numpy as np
from ray import serve
from ray.serve import context as serve_context

from deployments.metrics import install_serve_metrics
from deployments.placement import replica_placement
from voicegraph.audio.dsp import as_int16
from voicegraph.core.settings import Settings
from voicegraph.engines import ChunkRequest, ClonedVoice, EngineInfo, Sampling, Voice, build_engine, synthesizer
from voicegraph.engines.base import TimedAudio
from voicegraph.engines.slots import EngineSlots
from voicegraph.text.words import estimate_word_times


def deployment_name(engine: str) -> str:
    return f"Synthesizer-{engine}"


class _HeldVoice:
    """What Serve's multiplexing holds for a loaded voice: dropping it (Serve
    calls `__del__` on eviction) lets the engine free the model."""

    def __init__(self, engine, key: str, generation: int):
        self._engine, self._key, self._generation = engine, key, generation

    def __del__(self):
        self._engine.drop_voice(self._key, self._generation)


@serve.deployment(name="Synthesizer")
class Synthesizer:
    def __init__(self, settings: Settings, engine_name: str):
        install_serve_metrics()
        options = settings.synthesizer_for(engine_name)
        # Torch threads from this replica's CPU share, not from the node's cores.
        threads = max(1, int(options.num_cpus))
        engine = build_engine(settings, num_threads=threads, name=engine_name)
        self._chunks = synthesizer.Synthesizer(engine, retries=options.retries, backoff_s=options.retry_backoff_s)

        async def hold_voice_model(key: str) -> _HeldVoice:
            return _HeldVoice(engine, key, await asyncio.to_thread(engine.load_voice, key))

        # A plain function, set here: the bound is a setting, and Serve keeps
        # its multiplexing state on the function (a bound method takes no attributes).
        self._hold_voice = serve.multiplexed(max_num_models_per_replica=settings.piper.max_voices_per_replica)(
            hold_voice_model
        )
        self._batch_size = 1 if engine.default_batch_size == 1 else options.max_batch_size or engine.default_batch_size
        self._synthesize_together.set_max_batch_size(self._batch_size)
        self._synthesize_together.set_batch_wait_timeout_s(options.batch_wait_timeout_s)
        self._stream_together.set_max_batch_size(self._batch_size)
        self._stream_together.set_batch_wait_timeout_s(options.batch_wait_timeout_s)
        self._slots = EngineSlots(options.max_concurrent_chunks, engine.info().engine)

    def describe(self) -> EngineInfo:
        return self._chunks.engine.info()

    async def _voice_model_ready(self) -> None:
        """Load the voice model this call was routed for, if it names one."""
        if key := serve.get_multiplexed_model_id():
            await self._hold_voice(key)

    async def synthesize(
        self, text: str, voice: Voice, language: str, speed: float, sampling: Sampling = Sampling()
    ) -> np.ndarray:
        await self._voice_model_ready()
        # In a thread, so a slow engine call does not stall this replica's event
        # loop (health checks, other requests' bookkeeping). int16: half the
        # bytes of float32 through the object store, and what encoders take.
        if self._batch_size == 1:
            pcm = await self._slots.run(self._chunks.synthesize, text, voice, language, speed, sampling)
        else:
            request_id = serve_context._get_serve_request_context().request_id
            pcm = await self._synthesize_together(ChunkRequest(text, voice, language, speed, sampling, request_id))
            if isinstance(pcm, Exception):
                raise pcm
        return as_int16(pcm)

    async def synthesize_timed(
        self, text: str, voice: Voice, language: str, speed: float, sampling: Sampling = Sampling()
    ) -> TimedAudio:
        """`synthesize`, with when each word is said (for captions)."""
        if self._batch_size > 1:
            # Decoded with other chunks, by an engine (XTTS) that cannot time
            # its words: they are estimated, and the answer says so.
            pcm = await self.synthesize(text, voice, language, speed, sampling)
            seconds = len(pcm) / self._chunks.engine.info().sample_rate_for(voice)
            return TimedAudio(pcm, tuple(estimate_word_times(text, 0.0, seconds)), words_estimated=True)
        await self._voice_model_ready()
        timed = await self._slots.run(self._chunks.synthesize_timed, text, voice, language, speed, sampling)
        return dataclasses.replace(timed, pcm=as_int16(timed.pcm))

    @serve.batch
    async def _synthesize_together(self, chunks: list[ChunkRequest]) -> list[np.ndarray | Exception]:
        return await asyncio.to_thread(self._chunks.synthesize_batch, chunks)

    async def synthesize_pieces(
        self, text: str, voice: Voice, language: str, speed: float, sampling: Sampling = Sampling()
    ) -> AsyncIterator[np.ndarray]:
        """One chunk's audio in pieces as the engine makes them (int16; call
        with `handle.options(stream=True)`). Concurrent calls, from any
        requests, are decoded together as one batch of streams."""
        await self._voice_model_ready()
        request_id = serve_context._get_serve_request_context().request_id
        async for (piece,) in self._stream_together(ChunkRequest(text, voice, language, speed, sampling, request_id)):
            if len(piece):
                yield as_int16(piece)

    # The parametrised form: the bare decorator refuses async generators.
    # Sizes are set per engine in __init__.
    @serve.batch(max_batch_size=1)
    async def _stream_together(self, chunks: list[ChunkRequest]) -> AsyncIterator[list]:
        steps = self._chunks.stream_batch(chunks)
        try:
            # The engine steps in a thread: a step is a stretch of GPU work.
            while (step := await asyncio.to_thread(next, steps, None)) is not None:
                # Serve ends a caller's stream on StopIteration in its place. It
                # tests `result in (StopIteration, ...)`, which an array cannot
                # answer: each piece goes in a 1-tuple.
                yield [StopIteration if piece is None else (piece,) for piece in step]
        finally:
            await asyncio.to_thread(steps.close)

    async def clone_voice(self, pcm: np.ndarray, rate: int) -> ClonedVoice:
        # Cloning needs the loaded model (XTTS conditioning), which only
        # Synthesizer replicas hold: the VoiceCloner prepares audio and asks here.
        return await asyncio.to_thread(self._chunks.engine.clone, pcm, rate)

    def replica_info(self) -> dict:
        """Where this replica runs, what Ray gave it and what it has done."""
        return {
            **replica_placement(),
            "engine": self._chunks.engine.info().engine,
            **self._chunks.engine.voice_model_stats(),
            "chunks_done": self._chunks.chunks_done,
            "max_batch_size": self._batch_size,
            "batches_done": self._chunks.batches_done,
            "stream_batches_done": self._chunks.stream_batches_done,
            "pieces_done": self._chunks.pieces_done,
            "chunks_cancelled_waiting": self._slots.cancelled_waiting,
            "chunks_cancelled_running": self._slots.cancelled_running,
        }

    def check_health(self) -> None:
        # Serve calls this periodically; raising makes it replace the replica.
        self._chunks.engine.check_health()
