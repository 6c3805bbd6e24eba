"""Where audio and voices are kept: the one storage layout and its backends.

Layout (ARCHITECTURE.md), the same on every backend:

    voice_samples/voice_<slug>_sample_<YYYYmmdd_HHMMSS>.wav
    voice_profiles/voice_<slug>.npy   voice_profiles/voice_<slug>.json
    tts_generations/TTS_voice_<slug>_<YYYYmmdd_HHMMSS>.<ext>
    tts_cache/<sha256>.<ext>   tts_cache/<sha256>.json

Two writes in the same second get `_2`, `_3`, … before the extension.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from anyascii import anyascii

from ray import serve

from deployments.callbacks import backoff_s
from deployments.file_cache import FileCache
from deployments.jobs import (
    AudioDelivery,
    JobRecord,
    JobResult,
    JobStore,
    NewJob,
    PendingUpload,
    RunMode,
    RunRecord,
)
from deployments.stitcher import StitchedAudio, audio_format
from serve_app.errors import NotFoundError, StorageError
from serve_app.settings import Settings

if TYPE_CHECKING:
    from deployments.firebase_storage import FirebaseStorage

logger = logging.getLogger("ray.serve")

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


def response_cache_keys(digest: str, extension: str) -> tuple[str, str]:
    """(audio, sidecar) of a response cache entry: the sidecar is written last
    and read first, so a half-written entry is a miss."""
    return f"tts_cache/{digest}.{extension}", f"tts_cache/{digest}.json"


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
    # Kept locally, waiting for the bucket: `url` works once it is uploaded.
    upload_pending: bool = False


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

    def url(self, key: str) -> str:
        return self._path(key).as_uri()

    def _stored(self, key: str, data: bytes, content_type: str) -> StoredObject:
        return StoredObject(key=key, url=self.url(key), size_bytes=len(data), content_type=content_type)

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
        if self.spool is not None and self.spool.exists(key):
            return self.spool.get(key)
        if self.cache is not None and (data := self.cache.get(key)) is not None:
            return data
        try:
            data = self.backend.get(key)
        except FileNotFoundError:
            raise NotFoundError(f"nothing is stored at {key}") from None
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
    from deployments.firebase_storage import FirebaseStorage, open_bucket

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


@serve.deployment(name="StorageActor")
class StorageActor:
    """Storage, the job database and the outboxes. One replica: it is the
    only writer of the database and the only one draining the outboxes."""

    async def __init__(self, settings: Settings):
        # Imported here: outbox needs this module's StorageService.
        from deployments.outbox import Outbox

        self._settings = settings
        self._storage = await asyncio.to_thread(open_storage, settings)
        self._jobs = self._storage.jobs
        await asyncio.to_thread(self._jobs.extend_leases, settings.jobs.lease_s)
        self._outbox = Outbox(self._storage, settings)
        # Runs for the replica's life: after a restart it picks up whatever
        # the previous replica left in the outboxes.
        self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        interval = min(self._settings.callbacks.poll_interval_s, self._settings.jobs.poll_interval_s)
        while True:
            try:
                await self._outbox.tick()
            except Exception:
                logger.exception("outbox pass failed; trying again")
            await asyncio.sleep(interval)

    async def check_health(self) -> None:
        if self._drain_task.done():
            raise RuntimeError("the outbox loop stopped")

    # Files

    async def save_generation(self, audio: StitchedAudio, voice: str) -> StoredObject:
        return await asyncio.to_thread(self._storage.save_generation, audio, voice)

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

    # Jobs

    async def create_job(self, job: NewJob) -> JobRecord:
        return await asyncio.to_thread(self._jobs.create, job)

    async def get_job(self, job_id: str) -> JobRecord:
        record = await asyncio.to_thread(self._jobs.get, job_id)
        if record is None:
            raise NotFoundError(f"job {job_id!r} does not exist")
        return record

    async def create_run(
        self, mode: RunMode, delivery: AudioDelivery, sections: list[tuple[str | None, NewJob]]
    ) -> RunRecord:
        return await asyncio.to_thread(self._jobs.create_run, mode, delivery, sections)

    async def get_run(self, run_id: str) -> RunRecord:
        record = await asyncio.to_thread(self._jobs.get_run, run_id)
        if record is None:
            raise NotFoundError(f"run {run_id!r} does not exist")
        return record

    async def claim_job(self, owner: str, job_id: str | None = None) -> JobRecord | None:
        options = self._settings.jobs
        return await asyncio.to_thread(
            self._jobs.claim, owner, options.lease_s, options.max_attempts, job_id
        )

    async def heartbeat_job(
        self, job_id: str, owner: str, chunks_done: int, chunks_total: int | None
    ) -> bool:
        return await asyncio.to_thread(
            self._jobs.heartbeat, job_id, owner, self._settings.jobs.lease_s, chunks_done, chunks_total
        )

    async def complete_job(
        self, job_id: str, audio: StitchedAudio, voice: str, captions: str | list | None = None
    ) -> JobRecord | None:
        return await asyncio.to_thread(self._storage.complete_job, job_id, audio, voice, captions)

    async def fail_job(
        self, job_id: str, code: str, message: str, owner: str | None = None
    ) -> JobRecord | None:
        return await asyncio.to_thread(self._jobs.fail, job_id, code, message, None, owner)
