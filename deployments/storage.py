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

from ray import serve

from serve_app.errors import StorageError
from serve_app.settings import Settings

_SLUG_UNSAFE = re.compile(r"[^a-z0-9]+")
MAX_SLUG_CHARS = 64


def slugify(name: str) -> str:
    """A name → lowercase ASCII letters, digits and single underscores.

    Accents are folded (é → e); anything else, including path separators and
    dots, becomes "_", so a slug can never leave its folder.
    """
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = _SLUG_UNSAFE.sub("_", folded.lower()).strip("_")
    return slug[:MAX_SLUG_CHARS].rstrip("_")


def timestamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(timezone.utc)).strftime("%Y%m%d_%H%M%S")


def generation_key(voice: str, extension: str, moment: datetime | None = None) -> str:
    return f"tts_generations/TTS_voice_{slugify(voice) or 'unnamed'}_{timestamp(moment)}.{extension}"


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

    def write_new(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Write `data` under `key`, or under `key` with a `_N` suffix if taken.

        The bytes go to a temp file in the same folder first; `os.link` then
        publishes it under the final name only if that name is still free, so
        a reader never sees a partial file and concurrent writers (threads,
        processes, replicas) never overwrite each other.
        """
        target_dir = self._path(key).parent
        target_dir.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=target_dir, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            for attempt in range(1, 10_000):
                candidate = _with_suffix(key, attempt)
                try:
                    os.link(temp_name, self._path(candidate))
                except FileExistsError:
                    continue
                return StoredObject(
                    key=candidate,
                    url=self._path(candidate).as_uri(),
                    size_bytes=len(data),
                    content_type=content_type,
                )
            raise StorageError(f"no free name for {key!r}")
        finally:
            os.unlink(temp_name)


class StorageService:
    """Ray-free storage operations the graph needs."""

    def __init__(self, backend: LocalStorage):
        self.backend = backend

    def save_generation(self, audio: bytes, voice: str, extension: str, content_type: str) -> StoredObject:
        try:
            return self.backend.write_new(generation_key(voice, extension), audio, content_type)
        except OSError as exc:
            raise StorageError(f"could not store the generated audio: {exc.strerror or exc}") from exc


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
