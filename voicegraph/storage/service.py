"""The file operations the graph needs, over a local folder or a bucket.

Ray-free: the StorageActor deployment runs it in threads. It knows nothing of
jobs: which staged file belongs to which job, and retrying uploads, is the job
database's (`voicegraph.jobs`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from voicegraph.audio.stitching import StitchedAudio, audio_format
from voicegraph.core.errors import NotFoundError, StorageError
from voicegraph.core.settings import Settings
from voicegraph.storage.file_cache import FileCache
from voicegraph.storage.layout import StoredObject, generation_key
from voicegraph.storage.local import LocalStorage

if TYPE_CHECKING:
    from voicegraph.storage.firebase import FirebaseStorage

class Spool(Protocol):
    """Where generated audio waits for the bucket: a local folder
    (`LocalStorage`), or a shared database (`voicegraph.jobs.staged_files`)."""

    def write_new(self, key: str, data: bytes, content_type: str) -> StoredObject: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...
    def keys(self, staged_before: float) -> list[str]: ...


def _storage_error(action: str, exc: OSError) -> StorageError:
    return StorageError(f"could not {action}: {exc.strerror or exc}")


class StorageService:
    """Ray-free file operations; OS errors become StorageError.

    With a remote bucket, two stores stand in front of it: `spool` holds
    generated audio until the bucket has it (durable, never evicted: `stage`
    puts it there, `upload_staged` copies it up, `discard_staged` removes it
    once the caller has recorded the upload), and `cache`, a local folder,
    keeps recently written and read files so that reading them again needs
    no round trip.
    """

    def __init__(
        self,
        backend: LocalStorage | FirebaseStorage,
        spool: Spool | None = None,
        cache: FileCache | None = None,
    ):
        self.backend = backend
        self.spool = spool
        self.cache = cache

    def stage(self, audio: StitchedAudio, voice: str) -> StoredObject:
        """Store generated audio under a new key: with a bucket, in the spool
        first (`upload_pending` set), so it is safe on disk before the bucket
        is even tried; without one, where it stays."""
        key = generation_key(voice, audio_format(audio.format).extension)
        try:
            stored = (self.spool or self.backend).write_new(key, audio.data, audio.content_type)
        except OSError as exc:
            raise _storage_error("store the generated audio", exc) from exc
        if self.spool is None:
            return stored
        return StoredObject(
            key=stored.key,
            url=self.backend.url(stored.key),
            size_bytes=stored.size_bytes,
            content_type=stored.content_type,
            upload_pending=True,
        )

    def staged_keys(self, staged_before: float) -> list[str]:
        """Every file in the spool staged before `staged_before` (a time.time())."""
        return [] if self.spool is None else self.spool.keys(staged_before)

    def upload_staged(self, key: str, content_type: str) -> StoredObject | None:
        """Copy one spooled file to the bucket (the spool keeps it until
        `discard_staged`); None when it is no longer spooled (another caller
        uploaded it). StorageError when the bucket is unreachable."""
        try:
            data = self.spool.get(key)
        except FileNotFoundError:
            return None
        try:
            stored = self.backend.write_new(key, data, content_type)
        except OSError as exc:
            raise _storage_error(f"upload {key}", exc) from exc
        self._remember(stored.key, data)
        return stored

    def discard_staged(self, key: str) -> None:
        self.spool.delete(key)

    def write_new(self, key: str, data: bytes, content_type: str) -> StoredObject:
        try:
            stored = self.backend.write_new(key, data, content_type)
        except OSError as exc:
            raise _storage_error(f"store {key}", exc) from exc
        self._remember(stored.key, data)
        return stored

    def put(self, key: str, data: bytes, content_type: str, create_only: bool = False) -> StoredObject:
        """FileExistsError is not a fault: callers turn it into a 409."""
        try:
            stored = self.backend.put(key, data, content_type, create_only)
        except FileExistsError:
            raise
        except OSError as exc:
            raise _storage_error(f"store {key}", exc) from exc
        self._remember(key, data)
        return stored

    def _remember(self, key: str, data: bytes) -> None:
        if self.cache is not None:
            self.cache.put(key, data)

    def get(self, key: str) -> bytes:
        data = self.find(key)
        if data is None:
            raise NotFoundError(f"nothing is stored at {key}")
        return data

    def find(self, key: str) -> bytes | None:
        """`get` for keys that are often missing (cache entries, voice records):
        a miss is an answer, not an error Serve would log with its traceback."""
        if self.spool is not None and self.spool.exists(key):
            return self.spool.get(key)
        if self.cache is not None and (data := self.cache.get(key)) is not None:
            return data
        try:
            data = self.backend.get(key)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _storage_error(f"read {key}", exc) from exc
        self._remember(key, data)
        return data

    def exists(self, key: str) -> bool:
        if (self.spool is not None and self.spool.exists(key)) or (
            self.cache is not None and key in self.cache
        ):
            return True
        try:
            return self.backend.exists(key)
        except OSError as exc:
            raise _storage_error(f"look up {key}", exc) from exc

    def delete(self, key: str) -> bool:
        if self.cache is not None:
            self.cache.discard(key)
        try:
            return self.backend.delete(key)
        except OSError as exc:
            raise _storage_error(f"delete {key}", exc) from exc

    def list(self, prefix: str) -> list[str]:
        try:
            keys = set(self.backend.list(prefix))
        except OSError as exc:
            raise _storage_error(f"list {prefix}", exc) from exc
        if self.spool is not None:
            keys.update(self.spool.list(prefix))
        return sorted(keys)


def open_storage(settings: Settings, spool: Spool | None = None) -> StorageService:
    """The StorageService `settings` describe; with a bucket, generated audio
    waits for it in `spool`, or else in a folder of the storage root."""
    root = Path(settings.storage_root)
    if settings.storage_backend == "local":
        return StorageService(LocalStorage(root))
    # Imported here: a local deployment never loads the Google client libraries.
    from voicegraph.storage.firebase import FirebaseStorage, open_bucket

    firebase = settings.firebase
    bucket = FirebaseStorage(
        open_bucket(firebase),
        url_mode=firebase.url_mode,
        signed_url_ttl_s=firebase.signed_url_ttl_s,
        timeout_s=firebase.timeout_s,
        retry_deadline_s=firebase.retry_deadline_s,
    )
    # Several replicas would each cache a file that another one overwrites
    # (a voice profile saved again), and serve the old copy.
    single = settings.storage.num_replicas == 1
    return StorageService(
        bucket,
        spool=spool or LocalStorage(root / "pending_uploads"),
        cache=FileCache(root / "cache", firebase.cache_max_bytes) if single else None,
    )
