"""The storage operations the graph needs, over a local folder or a bucket.

Ray-free: the StorageActor deployment runs it in threads.
"""

from __future__ import annotations

import logging
import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING

from voicegraph.audio.stitching import StitchedAudio, audio_format
from voicegraph.core import metrics
from voicegraph.core.errors import NotFoundError, StorageError
from voicegraph.core.retry import backoff_s
from voicegraph.core.settings import Settings
from voicegraph.jobs.store import JobRecord, JobResult, JobStore, PendingUpload
from voicegraph.storage.file_cache import FileCache
from voicegraph.storage.layout import StoredObject, generation_key
from voicegraph.storage.local import LocalStorage

if TYPE_CHECKING:
    from voicegraph.storage.firebase import FirebaseStorage

logger = logging.getLogger("ray.serve")


def _storage_error(action: str, exc: OSError) -> StorageError:
    return StorageError(f"could not {action}: {exc.strerror or exc}")


class StorageService:
    """Ray-free storage operations the graph needs; OS errors become StorageError.

    With a remote bucket, two local folders stand in front of it: `spool`
    holds generated audio until the bucket has it (durable, never evicted; the
    uploads table in `jobs` lists it), and `cache` keeps recently written and
    read files so that reading them again needs no round trip.
    """

    def __init__(
        self,
        backend: LocalStorage | FirebaseStorage,
        jobs: JobStore | None = None,
        spool: LocalStorage | None = None,
        cache: FileCache | None = None,
        upload_backoff_s: tuple[float, float] = (1.0, 60.0),
    ):
        self.backend = backend
        self.upload_backoff_s = upload_backoff_s  # (first retry, longest wait)
        self.jobs = jobs
        self.spool = spool
        self.cache = cache
        if spool is not None:
            self._adopt_orphans()

    def _adopt_orphans(self) -> None:
        # A file spooled just before a crash, before its upload was recorded:
        # upload it rather than lose it.
        listed = set(self.jobs.pending_upload_keys())
        for path in self.spool.root.rglob("*"):
            key = path.relative_to(self.spool.root).as_posix()
            if path.is_file() and not path.name.startswith(".tmp-") and key not in listed:
                content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                self.jobs.add_upload(key, content_type, None)

    def _store_generation(self, audio: StitchedAudio, voice: str) -> StoredObject:
        # With a bucket, the spool first: the audio is safe on disk before the
        # bucket is even tried.
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

    def save_generation(self, audio: StitchedAudio, voice: str) -> StoredObject:
        """Store generated audio. With a bucket, it is uploaded at once if the
        bucket answers; if not, `upload_pending` is set, the file stays in the
        spool, and the upload outbox retries it until the bucket has it."""
        stored = self._store_generation(audio, voice)
        if not stored.upload_pending:
            return stored
        self.jobs.add_upload(stored.key, stored.content_type, None)
        return self.upload(PendingUpload(stored.key, stored.content_type, None, 0)) or stored

    def complete_job(
        self, job_id: str, audio: StitchedAudio, voice: str, captions: str | list | None = None
    ) -> JobRecord | None:
        """A runner finished a job's audio. Idempotent: once one runner has
        reported, a retried or second report changes nothing."""
        record = self.jobs.get(job_id)
        if record is None or record.status != "running" or record.stage != "synthesizing":
            return record
        stored = self._store_generation(audio, voice)
        result = JobResult(
            path=stored.key,
            url=stored.url,
            format=audio.format,
            content_type=audio.content_type,
            size_bytes=stored.size_bytes,
            duration_s=audio.duration_s,
            sample_rate=audio.sample_rate,
            captions=captions,
        )
        upload = stored.content_type if stored.upload_pending else None
        self.jobs.audio_ready(job_id, result, upload, len(audio.chunk_durations_s))
        if upload:
            self.upload(PendingUpload(stored.key, stored.content_type, job_id, 0))
        return self.jobs.get(job_id)

    def upload(self, pending: PendingUpload) -> StoredObject | None:
        """Move one spooled file to the bucket; None (and a retry scheduled,
        with backoff) when the bucket is unreachable."""
        try:
            data = self.spool.get(pending.key)
        except FileNotFoundError:
            return None  # the outbox and complete_job raced; the other one uploaded it
        try:
            stored = self.backend.write_new(pending.key, data, pending.content_type)
        except OSError as exc:
            retry_in = backoff_s(pending.attempts + 1, *self.upload_backoff_s)
            self.jobs.upload_failed(pending.key, str(exc), retry_in)
            metrics.count("voicegraph_upload_retries")
            logger.warning("upload of %s failed (%s); retrying in %.1f s", pending.key, exc, retry_in)
            return None
        self._remember(stored.key, data)
        self.jobs.upload_done(pending.key, stored.key, stored.url)
        self.spool.delete(pending.key)
        return stored

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


def open_storage(settings: Settings) -> StorageService:
    """The StorageService `settings` describe, with the job database beside it."""
    root = Path(settings.storage_root)
    jobs = JobStore(root / "jobs.sqlite3", callback_expiry_s=settings.callbacks.expire_after_s)
    if settings.storage_backend == "local":
        return StorageService(LocalStorage(root), jobs)
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
    return StorageService(
        bucket,
        jobs,
        spool=LocalStorage(root / "pending_uploads"),
        cache=FileCache(root / "cache", firebase.cache_max_bytes),
        upload_backoff_s=(firebase.upload_retry_initial_s, firebase.upload_retry_max_s),
    )
