"""The voice library: cloned voices by id, and voice_url references by URL.

Ray-free; the VoiceProfiles deployment (deployments/voice_profiles.py) is a thin shell around it.

A profile is two files in the storage layout: `voice_<slug>.npy` (the engine's
arrays, packed flat, never pickled) and `voice_<slug>.json` (the record, which
says how to unpack them). The record is written last, so it only ever points at
complete arrays.

Cloned voices travel to the Synthesizer with each chunk rather than being
routed with `@serve.multiplexed`: the conditioning is small (XTTS ~130 KB,
eSpeak a few numbers) and carrying it keeps every replica able to speak every
voice, so one long text still fans out over all replicas instead of queueing
on the few that have its voice loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel

from voicegraph.core.errors import (
    BuiltinVoiceError,
    InvalidVoiceNameError,
    NotFoundError,
    VoiceExistsError,
)
from voicegraph.core.settings import Settings
from voicegraph.engines import ClonedVoice
from voicegraph.net.safe_fetch import AllowList, fetch
from voicegraph.storage.layout import PROFILE_PREFIX, StoredObject, is_slug, profile_keys, sample_key, slugify
from voicegraph.voices.cloning import ClonedReference

# Every voice id, built-in or cloned, looks like this; the HTTP layer refuses
# any other before it is looked up. Clones' ids are slugs, a subset.
MAX_VOICE_ID_CHARS = 128
VOICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"

logger = logging.getLogger("ray.serve")

# What the library counts (the VoiceProfiles deployment exports them as metrics).
VoiceEvent = Literal["url_download", "url_cache_hit", "clone_upload", "clone_url"]


class VoiceRecord(BaseModel):
    """`voice_profiles/voice_<slug>.json`."""

    id: str
    name: str
    description: str = ""
    language: str
    engine: str
    model: str
    method: str
    created_at: datetime
    reference_duration_s: float  # seconds of speech the voice was made from
    original_duration_s: float  # seconds of the uploaded file before trimming
    sample_path: str
    sample_url: str
    params: dict[str, float | int | str] = {}
    # Name → shape of each array, in the order they are packed in the .npy.
    arrays: dict[str, list[int]] = {}


def voice_id_for(name: str, max_chars: int, builtin_ids: set[str]) -> str:
    """A display name → the voice's id (its storage slug), or a 4xx saying why not."""
    name = name.strip()
    if not name:
        raise InvalidVoiceNameError("name is empty; give the voice a name such as 'Narrator'")
    if len(name) > max_chars:
        raise InvalidVoiceNameError(
            f"name is {len(name)} characters long; the limit is {max_chars}"
        )
    voice_id = slugify(name)
    if not voice_id:
        raise InvalidVoiceNameError(
            f"name {name!r} has no letters or digits; use a name such as 'Narrator 2'"
        )
    if voice_id in builtin_ids:
        raise BuiltinVoiceError(
            f"{voice_id!r} is a built-in voice; choose another name for the clone"
        )
    return voice_id


def pack_arrays(arrays: dict[str, np.ndarray]) -> tuple[bytes, dict[str, list[int]]]:
    """Arrays → one flat float32 .npy and the shapes needed to split it again."""
    parts = [np.asarray(a, dtype=np.float32).ravel() for a in arrays.values()]
    flat = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    buffer = io.BytesIO()
    np.save(buffer, flat, allow_pickle=False)
    return buffer.getvalue(), {name: list(np.shape(a)) for name, a in arrays.items()}


def unpack_arrays(data: bytes, layout: dict[str, list[int]]) -> dict[str, np.ndarray]:
    flat = np.load(io.BytesIO(data), allow_pickle=False)
    sizes = [int(np.prod(shape)) for shape in layout.values()]
    if sum(sizes) != flat.size:
        raise ValueError(f"profile arrays hold {flat.size} values; the record expects {sum(sizes)}")
    arrays, offset = {}, 0
    for (name, shape), size in zip(layout.items(), sizes, strict=True):
        arrays[name] = flat[offset : offset + size].reshape(shape)
        offset += size
    return arrays


def cloned_voice(record: VoiceRecord, npy: bytes) -> ClonedVoice:
    return ClonedVoice(
        engine=record.engine,
        model=record.model,
        method=record.method,
        arrays=unpack_arrays(npy, record.arrays),
        params=dict(record.params),
    )


class LRU(OrderedDict):
    """A dict that forgets its least recently used entries beyond `size`."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def lookup(self, key):
        if key not in self:
            return None
        self.move_to_end(key)
        return self[key]

    def remember(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or awaits it."""

    def __init__(self):
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str):
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]


@dataclass(frozen=True)
class UrlVoice:
    """A voice cloned from a voice_url, with what revalidates it."""

    voice: ClonedVoice
    etag: str | None
    last_modified: str | None
    digest: str  # of the downloaded bytes: a changed URL with the same audio is not re-cloned


class VoiceStore(Protocol):
    """The StorageActor's file methods, awaited (a handle adapter, or a local service in tests)."""

    async def exists(self, key: str) -> bool: ...
    async def get(self, key: str) -> bytes: ...
    async def find(self, key: str) -> bytes | None: ...
    async def put(self, key: str, data: bytes, content_type: str, create_only: bool = False) -> StoredObject: ...
    async def write_new(self, key: str, data: bytes, content_type: str) -> StoredObject: ...
    async def delete(self, key: str) -> bool: ...
    async def list(self, prefix: str) -> list[str]: ...


class Cloner(Protocol):
    async def clone(self, data: bytes, language: str, with_sample: bool = True) -> ClonedReference: ...


class VoiceProfiles:
    """Cloned voices by id and voice_url references by URL, with their caches.

    Saves, deletes and loads of one id (or one URL) take turns, so the cache
    never holds a voice that storage has replaced or deleted.
    """

    def __init__(
        self,
        settings: Settings,
        storage: VoiceStore,
        cloner: Cloner,
        count: Callable[[VoiceEvent], None] = lambda event: None,
    ):
        self._settings = settings
        self._storage = storage
        self._cloner = cloner
        self._allow = AllowList.parse(settings.outbound.allow)
        self._profiles = LRU(settings.voices.profile_cache_size)  # id → (record, ClonedVoice)
        self._urls = LRU(settings.voices.url_cache_size)  # url → UrlVoice
        self._locks = KeyedLocks()
        self._count = count

    async def exists(self, voice_id: str) -> bool:
        return is_slug(voice_id) and await self._storage.exists(profile_keys(voice_id)[1])

    async def save(
        self,
        voice_id: str,
        name: str,
        description: str,
        language: str,
        reference: ClonedReference,
        overwrite: bool,
    ) -> VoiceRecord:
        npy_key, json_key = profile_keys(voice_id)
        npy, layout = pack_arrays(reference.voice.arrays)
        async with self._locks.hold(voice_id):
            previous = await self._record_or_none(voice_id)
            if previous is not None and not overwrite:
                raise voice_exists(voice_id)
            sample: StoredObject = await self._storage.write_new(
                sample_key(voice_id), reference.sample_wav, "audio/wav"
            )
            record = VoiceRecord(
                id=voice_id,
                name=name.strip(),
                description=description,
                language=language,
                engine=reference.voice.engine,
                model=reference.voice.model,
                method=reference.voice.method,
                created_at=datetime.now(timezone.utc),
                reference_duration_s=round(reference.speech_s, 3),
                original_duration_s=round(reference.original_s, 3),
                sample_path=sample.key,
                sample_url=sample.url,
                params=reference.voice.params,
                arrays=layout,
            )
            await self._storage.put(npy_key, npy, "application/octet-stream")
            try:
                await self._storage.put(
                    json_key, record.model_dump_json(indent=2).encode(), "application/json",
                    create_only=not overwrite,
                )
            except FileExistsError:
                # Another writer claimed the name between our check and now.
                await self._storage.delete(sample.key)
                raise voice_exists(voice_id) from None
            if previous is not None and previous.sample_path != sample.key:
                await self._storage.delete(previous.sample_path)
            self._profiles.remember(voice_id, (record, reference.voice))
            self._count("clone_upload")
            return record

    async def _record_or_none(self, voice_id: str) -> VoiceRecord | None:
        if not is_slug(voice_id):
            return None  # no clone can have this id
        data = await self._storage.find(profile_keys(voice_id)[1])
        return None if data is None else VoiceRecord.model_validate_json(data)

    async def record(self, voice_id: str) -> VoiceRecord:
        record = await self._record_or_none(voice_id)
        if record is None:
            raise _not_found(voice_id)
        return record

    async def get(self, voice_id: str) -> tuple[VoiceRecord, ClonedVoice]:
        async with self._locks.hold(voice_id):
            cached = self._profiles.lookup(voice_id)
            if cached is not None:
                return cached
            record = await self.record(voice_id)
            try:
                npy = await self._storage.get(profile_keys(voice_id)[0])
            except NotFoundError:
                raise _not_found(voice_id) from None
            loaded = (record, cloned_voice(record, npy))
            self._profiles.remember(voice_id, loaded)
            return loaded

    async def list_records(self) -> list[VoiceRecord]:
        keys = await self._storage.list(PROFILE_PREFIX)
        records = []
        for key in keys:
            if key.endswith(".json"):
                try:
                    records.append(VoiceRecord.model_validate_json(await self._storage.get(key)))
                except NotFoundError:
                    continue  # deleted while listing
        return sorted(records, key=lambda record: record.id)

    async def sample(self, voice_id: str) -> bytes:
        record = await self.record(voice_id)
        return await self._storage.get(record.sample_path)

    async def delete(self, voice_id: str) -> VoiceRecord:
        async with self._locks.hold(voice_id):
            record = await self.record(voice_id)
            npy_key, json_key = profile_keys(voice_id)
            # The record first: from then on the voice is gone, whatever else fails.
            await self._storage.delete(json_key)
            self._profiles.pop(voice_id, None)
            await self._storage.delete(npy_key)
            await self._storage.delete(record.sample_path)
            return record

    async def from_url(self, url: str, language: str, engine: str) -> tuple[ClonedVoice, bool]:
        """`engine`'s voice of the reference at `url`, and whether the cache served it.

        The cache is revalidated on every request (ETag / Last-Modified), so a
        changed file is cloned again and an unchanged one is neither
        downloaded nor cloned.
        """
        outbound, voices = self._settings.outbound, self._settings.voices
        # One clone per engine and URL: a voice is only meaningful to the engine that made it.
        cache_key = f"{engine} {url}"
        async with self._locks.hold("url:" + cache_key):
            cached: UrlVoice | None = self._urls.lookup(cache_key)
            resource = await asyncio.to_thread(
                fetch, url, allow=self._allow, max_bytes=voices.max_upload_bytes,
                timeout_s=outbound.timeout_s, max_redirects=outbound.max_redirects,
                etag=cached.etag if cached else None,
                last_modified=cached.last_modified if cached else None,
            )
            if resource.status == 304 and cached is not None:
                self._count("url_cache_hit")
                return cached.voice, True
            self._count("url_download")
            digest = hashlib.sha256(resource.content).hexdigest()
            if cached is not None and cached.digest == digest:
                self._count("url_cache_hit")
                return cached.voice, True
            reference: ClonedReference = await self._cloner.clone(
                resource.content, language, engine, with_sample=False
            )
            self._count("clone_url")
            self._urls.remember(
                cache_key, UrlVoice(reference.voice, resource.etag, resource.last_modified, digest)
            )
            return reference.voice, False


def voice_exists(voice_id: str) -> VoiceExistsError:
    return VoiceExistsError(
        f"a voice with id {voice_id!r} already exists; pick another name, or send "
        "overwrite=true to replace it"
    )


def _not_found(voice_id: str) -> NotFoundError:
    shown = voice_id if len(voice_id) <= 80 else voice_id[:80] + "…"
    return NotFoundError(f"no voice with id {shown!r}; GET /v1/voices lists them")
