"""Job callbacks: where they go, what they carry, how they are signed and sent.

The durable outbox (retries, expiry) builds on these; nothing here needs Ray.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict

from voicegraph.core.errors import UrlRefusedError, UrlUnreachableError
from voicegraph.net.safe_fetch import AllowList, Resolver, post

SIGNATURE_HEADER = "X-Voicegraph-Signature"
TIMESTAMP_HEADER = "X-Voicegraph-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "X-Voicegraph-Event"
ATTEMPT_HEADER = "X-Voicegraph-Attempt"

_TTS_PREFIX = "/api/tts/"


def error_callback_url(success_url: str) -> str:
    """The error callback URL for a job that gave only a success URL.

    `…/api/tts/<x>` (`callback` included) becomes `…/api/tts/error-callback`;
    any other URL gets `/error-callback` appended to its path. Decisions:
    - "under /api/tts/" means the path segments `api/tts` followed by at least
      one more; the first such `/api/tts/` counts, and anything after it is
      replaced (`/api/tts/jobs/42/done` → `/api/tts/error-callback`).
      `/api/ttsx/…` is not under it; matching is case-sensitive, like paths.
    - Trailing slashes are dropped first, so none produces `//`, and
      `/api/tts/` itself gets `/error-callback` appended, which is the same URL.
    - The query string stays (it often carries the receiver's token); the
      fragment goes, since it is never sent to a server anyway.
    - The URL is not validated here: safe_fetch checks it at delivery.
    """
    parts = urlsplit(success_url)
    path = parts.path.rstrip("/")
    head, under_tts, _ = path.partition(_TTS_PREFIX)
    path = f"{head}{_TTS_PREFIX}error-callback" if under_tts else f"{path}/error-callback"
    return urlunsplit(parts._replace(path=path, fragment=""))


class _Payload(BaseModel):
    # A misspelt field in our own code should fail, not vanish from the payload.
    model_config = ConfigDict(extra="forbid")


class ErrorCallback(_Payload):
    story_id: str | None = None
    error: str
    error_details: str | dict[str, Any] | None = None
    user_id: str | None = None
    voice_id: str | None = None
    job_id: str | None = None
    metadata: dict[str, Any] | None = None


class SuccessCallback(_Payload):
    job_id: str
    status: Literal["succeeded"] = "succeeded"
    story_id: str | None = None
    user_id: str | None = None
    voice_id: str | None = None
    audio_url: str
    audio_path: str
    content_type: str
    format: str
    duration_s: float
    size_bytes: int
    metadata: dict[str, Any] | None = None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value: "v1=" + hex HMAC-SHA256 of "<timestamp>.<body>"."""
    # The timestamp is signed with the body, so a captured delivery cannot be
    # replayed later: a fresh timestamp breaks the signature, and the old one
    # is outside the receiver's tolerance.
    message = f"{timestamp}.".encode() + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    timestamp_header: str | None,
    body: bytes,
    signature_header: str | None,
    *,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """What a receiver does: is this the body we signed, within tolerance_s of now?"""
    if not timestamp_header or not signature_header:
        return False
    # Digits only: int() would also take " 12", "+12" and "1_2".
    if not (timestamp_header.isascii() and timestamp_header.isdigit()):
        return False
    timestamp = int(timestamp_header)
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    # Bytes: compare_digest refuses str with non-ASCII characters, which a
    # forged header may well contain.
    return hmac.compare_digest(
        sign(secret, timestamp, body).encode(), signature_header.encode("utf-8", "replace")
    )


def delivery_headers(
    body: bytes,
    *,
    idempotency_key: str,
    event: str,
    attempt: int,
    secret: str | None,
    now: float,
) -> dict[str, str]:
    """Headers for one delivery attempt; signed when there is a secret."""
    timestamp = int(now)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "voicegraph-callbacks",
        IDEMPOTENCY_HEADER: idempotency_key,
        EVENT_HEADER: event,
        ATTEMPT_HEADER: str(attempt),
        TIMESTAMP_HEADER: str(timestamp),
    }
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return headers


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    status: int | None  # None: no HTTP answer
    error: str | None


def deliver(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    allow: AllowList,
    timeout_s: float,
    resolve: Resolver = socket.getaddrinfo,
) -> Delivery:
    """POST one callback and report how it went; only a 2xx answer delivers it.

    Refused and unreachable URLs and other answers are reported, not raised:
    whether to try again is the outbox's decision.
    """
    try:
        status = post(
            url, body=body, headers=headers, allow=allow, timeout_s=timeout_s, resolve=resolve
        ).status
    except (UrlRefusedError, UrlUnreachableError) as exc:
        return Delivery(delivered=False, status=None, error=exc.message)
    if 200 <= status < 300:
        return Delivery(delivered=True, status=status, error=None)
    # safe_fetch.post says why a redirect is not followed.
    hint = " (redirects are not followed)" if 300 <= status < 400 else ""
    return Delivery(delivered=False, status=status, error=f"answered HTTP {status}{hint}")
