"""The VoiceCloner deployment: reference audio → a cloned voice and a sample
(`voicegraph.voices.cloning`)."""

from __future__ import annotations

from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.handles import AsyncCalls
from voicegraph.core.settings import Settings
from voicegraph.voices import cloning


@serve.deployment(name="VoiceCloner")
class VoiceCloner:
    def __init__(self, settings: Settings, synthesizers: dict[str, DeploymentHandle]):
        self._cloner = cloning.VoiceCloner(
            settings, {engine: AsyncCalls(handle) for engine, handle in synthesizers.items()}
        )

    async def clone(
        self, data: bytes, language: str, engine: str, with_sample: bool = True
    ) -> cloning.ClonedReference:
        return await self._cloner.clone(data, language, engine, with_sample)
