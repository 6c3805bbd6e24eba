"""Firebase Storage (a Google Cloud Storage bucket) with LocalStorage's interface."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Literal

import firebase_admin
import google.auth.credentials
import google.auth.exceptions
import requests
from firebase_admin import credentials, storage
from google.api_core import exceptions as api_exceptions
from google.cloud.storage import Bucket
from google.cloud.storage.retry import DEFAULT_RETRY

from voicegraph.core.errors import StorageError
from voicegraph.core.settings import FirebaseSettings
from voicegraph.storage.layout import StoredObject, with_suffix

_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"


class BucketUnavailable(ConnectionError):
    """The bucket could not be reached, timed out, or answered 5xx/429."""


class _AnonymousCredentials(credentials.Base):
    """No credentials at all: an emulator accepts any request."""

    def get_credential(self) -> google.auth.credentials.Credentials:
        return google.auth.credentials.AnonymousCredentials()


def open_bucket(settings: FirebaseSettings) -> Bucket:
    if settings.emulator_host:
        # google-cloud-storage reads the emulator from the environment only.
        os.environ[_EMULATOR_ENV] = f"http://{settings.emulator_host}"
    emulator = os.environ.get(_EMULATOR_ENV)
    # firebase_admin apps are process-global and their storage client keeps the
    # endpoint and credentials it was created with: one app per combination.
    name = f"voicegraph-storage:{settings.bucket}:{emulator or ''}:{settings.credentials_file or ''}"
    try:
        app = firebase_admin.get_app(name)
    except ValueError:
        if settings.credentials_file:
            credential: credentials.Base = credentials.Certificate(str(settings.credentials_file))
        elif emulator:
            credential = _AnonymousCredentials()
        else:
            credential = credentials.ApplicationDefault()
        options = {"storageBucket": settings.bucket}
        if settings.project_id:
            options["projectId"] = settings.project_id
        app = firebase_admin.initialize_app(credential, options, name=name)
    # Signing only happens after an object is stored: refuse at startup instead.
    if settings.url_mode == "signed" and not isinstance(
        app.credential.get_credential(), google.auth.credentials.Signing
    ):
        raise ValueError(
            "firebase.url_mode 'signed' needs credentials that can sign: set firebase.credentials_file"
        )
    return storage.bucket(app=app)


def _md5(data: bytes) -> str:
    """The base64 MD5 digest, as GCS reports it in `md5Hash`."""
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


class FirebaseStorage:
    """Objects in a bucket; the same keys, semantics and errors as LocalStorage."""

    def __init__(
        self,
        bucket: Bucket,
        *,
        url_mode: Literal["signed", "public"],
        signed_url_ttl_s: int,
        timeout_s: float,
        retry_deadline_s: float,
    ):
        self._bucket = bucket
        self._url_mode = url_mode
        self._signed_url_ttl = timedelta(seconds=signed_url_ttl_s)
        # The client's default retry runs for 120 s: far too long for a request
        # waiting on a bucket that is down.
        self._call: dict[str, Any] = {
            "timeout": timeout_s,
            "retry": DEFAULT_RETRY.with_timeout(retry_deadline_s),
        }

    @contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        where = f"gs://{self._bucket.name}/{key}"
        try:
            yield
        except api_exceptions.NotFound as exc:
            raise FileNotFoundError(f"{where} does not exist") from exc
        except (
            api_exceptions.Unauthorized,
            api_exceptions.Forbidden,
            google.auth.exceptions.RefreshError,
        ) as exc:
            # A credentials or IAM problem is an outage too, not a bug of the caller.
            raise PermissionError(f"not allowed to {action} {where}: {exc}") from exc
        except (
            api_exceptions.ServerError,
            api_exceptions.TooManyRequests,
            api_exceptions.RetryError,
            google.auth.exceptions.TransportError,
            requests.RequestException,
            TimeoutError,
        ) as exc:
            raise BucketUnavailable(f"could not {action} {where}: {exc}") from exc

    def _stored(self, key: str, data: bytes, content_type: str) -> StoredObject:
        return StoredObject(key=key, url=self.url(key), size_bytes=len(data), content_type=content_type)

    def _create(self, key: str, data: bytes, content_type: str) -> None:
        """Upload only if `key` is free: PreconditionFailed when it is taken."""
        self._bucket.blob(key).upload_from_string(
            data, content_type=content_type, if_generation_match=0, **self._call
        )

    def write_new(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Write `data` under `key`, or under `key` with a `_N` suffix if taken.

        A name already holding these very bytes is returned as is: an upload
        retried after a success whose answer was lost must not make a copy.
        """
        digest = _md5(data)
        for attempt in range(1, 10_000):
            candidate = with_suffix(key, attempt)
            with self._errors("store", candidate):
                # Real GCS enforces if_generation_match=0 atomically; the
                # emulator ignores preconditions, so there only this check holds.
                existing = self._bucket.get_blob(candidate, **self._call)
                if existing is None:
                    try:
                        self._create(candidate, data, content_type)
                        return self._stored(candidate, data, content_type)
                    except api_exceptions.PreconditionFailed:
                        existing = self._bucket.get_blob(candidate, **self._call)
                if existing is not None and existing.md5_hash == digest:
                    return self._stored(candidate, data, content_type)
        raise StorageError(f"no free name for {key!r}")

    def put(self, key: str, data: bytes, content_type: str, create_only: bool = False) -> StoredObject:
        """Write `data` under exactly `key`; `create_only` raises FileExistsError if taken."""
        with self._errors("store", key):
            if not create_only:
                self._bucket.blob(key).upload_from_string(data, content_type=content_type, **self._call)
            elif self._bucket.get_blob(key, **self._call) is not None:
                raise FileExistsError(f"gs://{self._bucket.name}/{key} exists")
            else:
                try:
                    self._create(key, data, content_type)
                except api_exceptions.PreconditionFailed as exc:
                    raise FileExistsError(f"gs://{self._bucket.name}/{key} exists") from exc
        return self._stored(key, data, content_type)

    def get(self, key: str) -> bytes:
        with self._errors("read", key):
            return self._bucket.blob(key).download_as_bytes(**self._call)

    def exists(self, key: str) -> bool:
        with self._errors("look up", key):
            return self._bucket.blob(key).exists(**self._call)

    def delete(self, key: str) -> bool:
        try:
            with self._errors("delete", key):
                self._bucket.blob(key).delete(**self._call)
        except FileNotFoundError:
            return False
        return True

    def list(self, prefix: str) -> list[str]:
        """Keys starting with `prefix`, e.g. "voice_profiles/voice_", sorted.

        The "/" delimiter leaves out deeper "folders", as LocalStorage does.
        """
        with self._errors("list", prefix):
            blobs = self._bucket.list_blobs(prefix=prefix, delimiter="/", **self._call)
            return sorted(blob.name for blob in blobs)

    def url(self, key: str) -> str:
        blob = self._bucket.blob(key)
        if self._url_mode == "public":
            return blob.public_url
        with self._errors("sign a URL for", key):
            return blob.generate_signed_url(version="v4", expiration=self._signed_url_ttl, method="GET")
