"""The Synthesizer deployment: one engine per replica; chunk + voice → PCM."""

from __future__ import annotations

import asyncio

import numpy as np
import ray
from ray import serve

from deployments.metrics import install_serve_metrics
from voicegraph.audio.dsp import as_int16
from voicegraph.core.settings import Settings
from voicegraph.engines import ClonedVoice, EngineInfo, Sampling, Voice, build_engine, synthesizer


@serve.deployment(name="Synthesizer")
class Synthesizer:
    def __init__(self, settings: Settings):
        install_serve_metrics()
        # Torch threads from this replica's CPU share, not from the node's cores.
        threads = max(1, int(settings.synthesizer.num_cpus))
        self._chunks = synthesizer.Synthesizer(
            build_engine(settings, num_threads=threads),
            retries=settings.synthesizer.retries,
            backoff_s=settings.synthesizer.retry_backoff_s,
        )

    def describe(self) -> EngineInfo:
        return self._chunks.engine.info()

    async def synthesize(
        self, text: str, voice: Voice, language: str, speed: float, sampling: Sampling = Sampling()
    ) -> np.ndarray:
        # In a thread, so a slow engine call does not stall this replica's event
        # loop (health checks, other requests' bookkeeping). int16: half the
        # bytes of float32 through the object store, and what encoders take.
        pcm = await asyncio.to_thread(self._chunks.synthesize, text, voice, language, speed, sampling)
        return as_int16(pcm)

    async def clone_voice(self, pcm: np.ndarray, rate: int) -> ClonedVoice:
        # Cloning needs the loaded model (XTTS conditioning), which only
        # Synthesizer replicas hold: the VoiceCloner prepares audio and asks here.
        return await asyncio.to_thread(self._chunks.engine.clone, pcm, rate)

    def replica_info(self) -> dict:
        """Where this replica runs and what Ray gave it: for operators and placement checks."""
        context = ray.get_runtime_context()
        return {
            "replica_id": serve.get_replica_context().replica_id.unique_id,
            "node_id": context.get_node_id(),
            "assigned_resources": context.get_assigned_resources(),
            "gpu_ids": [str(gpu) for gpu in context.get_accelerator_ids().get("GPU", [])],
            "engine": self._chunks.engine.info().engine,
            "chunks_done": self._chunks.chunks_done,
        }

    def check_health(self) -> None:
        # Serve calls this periodically; raising makes it replace the replica.
        self._chunks.engine.check_health()
