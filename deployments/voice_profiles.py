"""The VoiceProfiles deployment: cloned voices by id and voice_url references (`voicegraph.voices.profiles`).

Cloned voices travel to the Synthesizer with each chunk rather than being
routed with `@serve.multiplexed`: the conditioning is small (XTTS ~130 KB,
eSpeak a few numbers) and carrying it keeps every replica able to speak every
voice, so one long text still fans out over all replicas instead of queueing
on the few that have its voice loaded.
"""

from __future__ import annotations

from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.handles import AsyncCalls
from deployments.metrics import install_serve_metrics
from voicegraph.core import metrics
from voicegraph.core.settings import Settings
from voicegraph.engines import ClonedVoice
from voicegraph.voices import profiles
from voicegraph.voices.cloning import ClonedReference


@serve.deployment(name="VoiceProfiles")
class VoiceProfiles:
    def __init__(self, settings: Settings, storage: DeploymentHandle, cloner: DeploymentHandle):
        install_serve_metrics()

        def count(event: profiles.VoiceEvent) -> None:
            if event == "url_download":
                metrics.count("voicegraph_voice_url_downloads")
            elif event == "url_cache_hit":
                metrics.count("voicegraph_voice_url_cache_hits")
            else:
                metrics.count("voicegraph_voice_clones", source=event.removeprefix("clone_"))

        self._profiles = profiles.VoiceProfiles(settings, AsyncCalls(storage), AsyncCalls(cloner), count)

    async def exists(self, voice_id: str) -> bool:
        return await self._profiles.exists(voice_id)

    async def save(
        self,
        voice_id: str,
        name: str,
        description: str,
        language: str,
        reference: ClonedReference,
        overwrite: bool,
    ) -> profiles.VoiceRecord:
        return await self._profiles.save(voice_id, name, description, language, reference, overwrite)

    async def record(self, voice_id: str) -> profiles.VoiceRecord:
        return await self._profiles.record(voice_id)

    async def get(self, voice_id: str) -> tuple[profiles.VoiceRecord, ClonedVoice]:
        return await self._profiles.get(voice_id)

    async def list_records(self) -> list[profiles.VoiceRecord]:
        return await self._profiles.list_records()

    async def sample(self, voice_id: str) -> bytes:
        return await self._profiles.sample(voice_id)

    async def delete(self, voice_id: str) -> profiles.VoiceRecord:
        return await self._profiles.delete(voice_id)

    async def from_url(self, url: str, language: str, engine: str) -> tuple[ClonedVoice, bool]:
        return await self._profiles.from_url(url, language, engine)
