"""Local stand-ins for the deployments a voice core calls through handles:
the real StorageService and the real eSpeak engine, awaited in threads, as
the deployments run them."""

from __future__ import annotations

import asyncio

from voicegraph.engines.espeak import EspeakEngine
from voicegraph.engines.synthesizer import Synthesizer
from voicegraph.storage.service import StorageService


class LocalStorageCalls:
    """The StorageActor's file methods over a real StorageService; counts reads."""

    def __init__(self, service: StorageService):
        self.service = service
        self.reads: list[str] = []

    async def exists(self, key):
        return await asyncio.to_thread(self.service.exists, key)

    async def get(self, key):
        self.reads.append(key)
        return await asyncio.to_thread(self.service.get, key)

    async def find(self, key):
        self.reads.append(key)
        return await asyncio.to_thread(self.service.find, key)

    async def put(self, key, data, content_type, create_only=False):
        return await asyncio.to_thread(self.service.put, key, data, content_type, create_only)

    async def write_new(self, key, data, content_type):
        return await asyncio.to_thread(self.service.write_new, key, data, content_type)

    async def delete(self, key):
        return await asyncio.to_thread(self.service.delete, key)

    async def list(self, prefix):
        return await asyncio.to_thread(self.service.list, prefix)


class LocalSynthesizerCalls:
    """The Synthesizer deployment's methods over a real eSpeak engine."""

    def __init__(self):
        self.chunks = Synthesizer(EspeakEngine())

    async def clone_voice(self, pcm, rate):
        return await asyncio.to_thread(self.chunks.engine.clone, pcm, rate)

    async def describe(self):
        return self.chunks.engine.info()

    async def synthesize(self, text, voice, language, speed):
        return await asyncio.to_thread(self.chunks.synthesize, text, voice, language, speed)
