"""The local storage backend: files under a root folder."""

from __future__ import annotations

import os
from pathlib import Path

from voicegraph.core.errors import StorageError
from voicegraph.storage.files import TEMP_PREFIX, path_inside, staged_copy
from voicegraph.storage.layout import StoredObject, with_suffix


class LocalStorage:
    """Files under a root folder; writes are atomic and never overwrite."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return path_inside(self.root, key)

    def url(self, key: str) -> str:
        return self._path(key).as_uri()

    def _stored(self, key: str, data: bytes, content_type: str) -> StoredObject:
        return StoredObject(key=key, url=self.url(key), size_bytes=len(data), content_type=content_type)

    def _staged(self, key: str, data: bytes) -> str:
        return staged_copy(self._path(key).parent, data)

    def write_new(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Write `data` under `key`, or under `key` with a `_N` suffix if taken.

        `os.link` publishes the staged file only if the name is still free, so
        concurrent writers (threads, processes, replicas) never overwrite each other.
        """
        temp_name = self._staged(key, data)
        try:
            for attempt in range(1, 10_000):
                candidate = with_suffix(key, attempt)
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
            if path.is_file() and path.name.startswith(name_start) and not path.name.startswith(TEMP_PREFIX)
        )

    def keys(self, staged_before: float) -> list[str]:
        """Every finished file, in any folder, last written before `staged_before` (a time.time())."""
        return [
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file() and not path.name.startswith(TEMP_PREFIX) and path.stat().st_mtime < staged_before
        ]
