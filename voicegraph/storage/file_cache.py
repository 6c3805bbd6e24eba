"""A size-bounded least-recently-used cache of stored objects on local disk."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

from voicegraph.storage.files import TEMP_PREFIX, path_inside, staged_copy


class FileCache:
    """Files under `root` named by storage key, at most `max_bytes` in all.

    Recency is kept in the files' mtimes, so the order survives a restart.
    `max_bytes` 0 disables the cache. Safe to call from several threads.
    """

    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._sizes: OrderedDict[str, int] = OrderedDict()  # least recently used first
        self._total = 0
        self._last_stamp = 0
        found = []
        for path in self.root.rglob("*"):
            if not path.is_file():
                continue
            if path.name.startswith(TEMP_PREFIX):
                path.unlink()  # a put interrupted by a crash
                continue
            stat = path.stat()
            found.append((stat.st_mtime_ns, path.relative_to(self.root).as_posix(), stat.st_size))
        for stamp, key, size in sorted(found):
            self._sizes[key] = size
            self._total += size
            self._last_stamp = max(self._last_stamp, stamp)
        self._evict()

    def _path(self, key: str) -> tuple[str, Path]:
        """(the key in canonical form, its file); keys may not leave the root."""
        path = path_inside(self.root, key)
        if path == self.root:
            raise ValueError(f"key {key!r} escapes the cache root: it names the root itself")
        return path.relative_to(self.root).as_posix(), path

    @property
    def total_bytes(self) -> int:
        return self._total

    def __contains__(self, key: str) -> bool:
        return self._path(key)[0] in self._sizes

    def _touch(self, key: str, path: Path) -> None:
        """Marks `key` most recently used. Stamps strictly increase, so files
        used within one tick of the clock still rebuild in the right order."""
        self._sizes.move_to_end(key)
        self._last_stamp = max(time.time_ns(), self._last_stamp + 1)
        os.utime(path, ns=(self._last_stamp, self._last_stamp))

    def _forget(self, key: str) -> None:
        self._total -= self._sizes.pop(key, 0)

    def _evict(self) -> None:
        while self._sizes and (self._total > self.max_bytes or not self.max_bytes):
            key = next(iter(self._sizes))
            self._forget(key)
            (self.root / key).unlink(missing_ok=True)

    def get(self, key: str) -> bytes | None:
        key, path = self._path(key)
        with self._lock:
            if key not in self._sizes:
                return None
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # removed behind the cache's back
                self._forget(key)
                return None
            self._touch(key, path)
            return data

    def put(self, key: str, data: bytes) -> None:
        key, path = self._path(key)
        if not self.max_bytes or len(data) > self.max_bytes:
            # Not cached, but an older version must not be served either.
            self.discard(key)
            return
        temp_name = staged_copy(path.parent, data)
        try:
            with self._lock:
                os.replace(temp_name, path)
                self._forget(key)
                self._sizes[key] = len(data)
                self._total += len(data)
                self._touch(key, path)
                self._evict()
        finally:
            if os.path.exists(temp_name):
                os.unlink(temp_name)

    def discard(self, key: str) -> None:
        key, path = self._path(key)
        with self._lock:
            self._forget(key)
            path.unlink(missing_ok=True)
