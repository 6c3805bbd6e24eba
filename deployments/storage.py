"""Where audio and voices are kept: the one storage layout and its backends.

Layout (ARCHITECTURE.md), the same on every backend:

    voice_samples/voice_<slug>_sample_<YYYYmmdd_HHMMSS>.wav
    voice_profiles/voice_<slug>.npy   voice_profiles/voice_<slug>.json
    tts_generations/TTS_voice_<slug>_<YYYYmmdd_HHMMSS>.<ext>

Two writes in the same second get `_2`, `_3`, … before the extension.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from anyascii import anyascii
from ray import serve

from serve_app.errors import NotFoundError, StorageError
from serve_app.settings import Settings

_SLUG_UNSAFE = re.compile(r"[^a-z0-9]+")
MAX_SLUG_CHARS = 64


def slugify(name: str) -> str:
    """A name → lowercase ASCII letters, digits and single underscores.

    Any script is transliterated (Zoë → zoe, 日本語 → ribenyu) rather than
    dropped, so non-Latin names stay usable; anything else, including path
    separators and dots, becomes "_", so a slug can never leave its folder.
    """
    folded = anyascii(unicodedata.normalize("NFC", name))
    slug = _SLUG_UNSAFE.sub("_", folded.lower()).strip("_")
    return slug[:MAX_SLUG_CHARS].rstrip("_")


def timestamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(timezone.utc)).strftime("%Y%m%d_%H%M%S")


def generation_key(voice: str, extension: str, moment: datetime | None = None) -> str:
    return f"tts_generations/TTS_voice_{slugify(voice) or 'unnamed'}_{timestamp(moment)}.{extension}"


def profile_keys(slug: str) -> tuple[str, str]:
    """(arrays, record) of a cloned voice: the record is written last, so it
    only ever points at complete arrays."""
    return f"voice_profiles/voice_{slug}.npy", f"voice_profiles/voice_{slug}.json"


PROFILE_PREFIX = "voice_profiles/voice_"


def sample_key(slug: str, moment: datetime | None = None) -> str:
    return f"voice_samples/voice_{slug}_sample_{timestamp(moment)}.wav"


def _with_suffix(key: str, attempt: int) -> str:
    if attempt == 1:
        return key
    stem, dot, extension = key.rpartition(".")
    return f"{stem}_{attempt}{dot}{extension}"


@dataclass(frozen=True)
class StoredObject:
    key: str  # path inside the storage root / bucket, e.g. tts_generations/…wav
    url: str
    size_bytes: int
    content_type: str


class LocalStorage:
    """Files under a root folder; writes are atomic and never overwrite."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"key {key!r} escapes the storage root")
        return path

    def _stored(self, key: str, data: bytes, content_type: str) -> StoredObject:
        return StoredObject(
            key=key, url=self._path(key).as_uri(), size_bytes=len(data), content_type=content_type
        )

    def _staged(self, key: str, data: bytes) -> str:
        """`data` in a synced temp file beside `key`'s final place: published
        by link or rename, so a reader never sees a partial file."""
        target_dir = self._path(key).parent
        target_dir.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=target_dir, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return temp_name

    def write_new(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Write `data` under `key`, or under `key` with a `_N` suffix if taken.

        `os.link` publishes the staged file only if the name is still free, so
        concurrent writers (threads, processes, replicas) never overwrite each other.
        """
        temp_name = self._staged(key, data)
        try:
            for attempt in range(1, 10_000):
                candidate = _with_suffix(key, attempt)
                try:
                    os.link(temp_name, self._path(candidate))
                except FileExistsError:
                    continue
                return self._stored(candidate, data, content_type)
            raise StorageError(f"no free name for {key!r}")
        finally:
            os.unlink(temp_name)

    def put(self, key: str, data: bytes, content_type: str, create_only: bool = False) -> StoredObject:
        """Write `data` under exactly `key`; `create_only` raises FileExistsError if taken."""
        temp_name = self._staged(key, data)
        try:
            if create_only:
                os.link(temp_name, self._path(key))
            else:
                os.replace(temp_name, self._path(key))
        finally:
            if os.path.exists(temp_name):
                os.unlink(temp_name)
        return self._stored(key, data, content_type)

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> bool:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def list(self, prefix: str) -> list[str]:
        """Keys starting with `prefix`, e.g. "voice_profiles/voice_", sorted."""
        folder, _, name_start = prefix.rpartition("/")
        directory = self._path(folder)
        if not directory.is_dir():
            return []
        return sorted(
            f"{folder}/{path.name}" if folder else path.name
            for path in directory.iterdir()
            if path.is_file() and path.name.startswith(name_start) and not path.name.startswith(".tmp-")
        )


def _storage_error(action: str, exc: OSError) -> StorageError:
    return StorageError(f"could not {action}: {exc.strerror or exc}")


class StorageService:
    """Ray-free storage operations the graph needs; OS errors become StorageError."""

    def __init__(self, backend: LocalStorage):
        self.backend = backend

    def save_generation(self, audio: bytes, voice: str, extension: str, content_type: str) -> StoredObject:
        try:
            return self.backend.write_new(generation_key(voice, extension), audio, content_type)
        except OSError as exc:
            raise _storage_error("store the generated audio", exc) from exc

    def write_new(self, key: str, data: bytes, content_type: str) -> StoredObject:
        try:
            return self.backend.write_new(key, data, content_type)
        except OSError as exc:
            raise _storage_error(f"store {key}", exc) from exc

    def put(self, key: str, data: bytes, content_type: str, create_only: bool = False) -> StoredObject:
        """FileExistsError is not a fault: callers turn it into a 409."""
        try:
            return self.backend.put(key, data, content_type, create_only)
        except FileExistsError:
            raise
        except OSError as exc:
            raise _storage_error(f"store {key}", exc) from exc

    def get(self, key: str) -> bytes:
        try:
            return self.backend.get(key)
        except FileNotFoundError:
            raise NotFoundError(f"nothing is stored at {key}") from None
        except OSError as exc:
            raise _storage_error(f"read {key}", exc) from exc

    def exists(self, key: str) -> bool:
        return self.backend.exists(key)

    def delete(self, key: str) -> bool:
        try:
            return self.backend.delete(key)
        except OSError as exc:
            raise _storage_error(f"delete {key}", exc) from exc

    def list(self, prefix: str) -> list[str]:
        try:
            return self.backend.list(prefix)
        except OSError as exc:
            raise _storage_error(f"list {prefix}", exc) from exc


@serve.deployment(name="StorageActor")
class StorageActor:
    def __init__(self, settings: Settings):
        self._storage = StorageService(LocalStorage(settings.storage_root))

    async def save_generation(
        self, audio: bytes, voice: str, extension: str, content_type: str
    ) -> StoredObject:
        return await asyncio.to_thread(
            self._storage.save_generation, audio, voice, extension, content_type
        )

    async def write_new(self, key: str, data: bytes, content_type: str) -> StoredObject:
        return await asyncio.to_thread(self._storage.write_new, key, data, content_type)

    async def put(
        self, key: str, data: bytes, content_type: str, create_only: bool = False
    ) -> StoredObject:
        return await asyncio.to_thread(self._storage.put, key, data, content_type, create_only)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._storage.get, key)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._storage.exists, key)

    async def delete(self, key: str) -> bool:
        return await asyncio.to_thread(self._storage.delete, key)

    async def list(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self._storage.list, prefix)
