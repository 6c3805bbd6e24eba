"""The one exception hierarchy.

Every error the service raises on purpose is a `VoiceGraphError` with an HTTP
status and a stable `code` that clients can branch on. A 4xx means the request
can be fixed by the caller; a 5xx is a bug or an outage, never a validation
result. Deployments raise these too: Ray carries them across handles and the
ingress maps them to `{"error": {"code", "message", "request_id"}}`.
"""

from __future__ import annotations

import math


class VoiceGraphError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides the body."""
        return {}

    def __reduce__(self):
        # Keep the subclass and message intact when Ray pickles the error
        # across a DeploymentHandle.
        return (self.__class__, (self.message,))


# 4xx: the caller can fix these.


class InvalidRequestError(VoiceGraphError):
    status_code = 422
    code = "invalid_request"


class MalformedBodyError(VoiceGraphError):
    """A body that cannot be read at all: not UTF-8, broken multipart framing."""

    status_code = 400
    code = "malformed_body"


class MalformedJSONError(MalformedBodyError):
    code = "malformed_json"


class UnsupportedMediaTypeError(VoiceGraphError):
    status_code = 415
    code = "unsupported_media_type"


class PayloadTooLargeError(VoiceGraphError):
    status_code = 413
    code = "payload_too_large"


class EmptyTextError(InvalidRequestError):
    code = "empty_text"


class InvalidTextError(InvalidRequestError):
    """Text no engine can read: not valid Unicode (a lone surrogate from a broken client)."""

    code = "invalid_text"


class TextTooLongError(InvalidRequestError):
    code = "text_too_long"


class UnknownVoiceError(InvalidRequestError):
    code = "unknown_voice"


class AmbiguousVoiceError(InvalidRequestError):
    """A bare voice id that several engines offer, none of them the default."""

    code = "ambiguous_voice"


class UnknownEngineError(InvalidRequestError):
    """An engine this service does not run."""

    code = "unknown_engine"


class UnsupportedLanguageError(InvalidRequestError):
    code = "unsupported_language"


class UnsupportedFormatError(InvalidRequestError):
    code = "unsupported_format"


class SpeedOutOfRangeError(InvalidRequestError):
    code = "speed_out_of_range"


class InvalidAudioError(InvalidRequestError):
    """The upload or fetched reference is not audio we can decode."""

    code = "invalid_audio"


class AudioTooShortError(InvalidRequestError):
    code = "audio_too_short"


class SilentAudioError(InvalidRequestError):
    code = "silent_audio"


class InvalidVoiceNameError(InvalidRequestError):
    code = "invalid_voice_name"


class IncompatibleVoiceError(InvalidRequestError):
    """A cloned voice made by another engine or model than the one serving."""

    code = "incompatible_voice"


class CloningUnsupportedError(InvalidRequestError):
    """The serving engine's voices are trained models that cannot copy a recording."""

    code = "cloning_unsupported"


class UrlRefusedError(InvalidRequestError):
    """An outbound URL that is not http(s) or points at a refused address."""

    code = "url_refused"


class UrlUnreachableError(InvalidRequestError):
    code = "url_unreachable"


class InvalidTimeoutError(InvalidRequestError):
    """X-Request-Timeout is not a number of seconds above 0."""

    code = "invalid_timeout"


class DeadlineTooShortError(InvalidRequestError):
    """The request's own deadline is shorter than its work takes on an idle
    service: waiting and retrying cannot help."""

    code = "deadline_too_short"


class AuthenticationError(VoiceGraphError):
    """No API key, a wrong one or a revoked one."""

    status_code = 401
    code = "invalid_api_key"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class RetryLaterError(VoiceGraphError):
    """The same request will succeed later: the answer says when (Retry-After)."""

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def __reduce__(self):
        return (self.__class__, (self.message, self.retry_after_s))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


class RateLimitedError(RetryLaterError):
    status_code = 429
    # OpenAI's code for the same answer, so its clients' handling applies.
    code = "rate_limit_exceeded"


class ConflictError(VoiceGraphError):
    status_code = 409
    code = "conflict"


class VoiceExistsError(ConflictError):
    code = "voice_exists"


class BuiltinVoiceError(ConflictError):
    code = "builtin_voice"


class NotFoundError(VoiceGraphError):
    status_code = 404
    code = "not_found"


class MethodNotAllowedError(VoiceGraphError):
    status_code = 405
    code = "method_not_allowed"


# 5xx: outages and bugs.


class SynthesisError(VoiceGraphError):
    """The engine failed on a chunk and retries did not help."""

    status_code = 503
    code = "synthesis_failed"


class ReplicaFaultError(VoiceGraphError):
    """This replica's accelerator is broken (e.g. a CUDA device-side assert).

    Never retried on the same replica: the replica reports itself unhealthy so
    Serve replaces it, and the ingress sends the chunk to another replica.
    """

    status_code = 503
    code = "replica_fault"


class EncodingError(VoiceGraphError):
    status_code = 500
    code = "encoding_failed"


class OverloadedError(RetryLaterError):
    """A queue in the graph is full: refused at once rather than left to time out."""

    status_code = 503
    code = "overloaded"


class StorageError(VoiceGraphError):
    status_code = 503
    code = "storage_unavailable"


class ConfigError(VoiceGraphError):
    """A setting the service cannot start with (an unreachable database, a
    wrong password); the message names the setting."""

    code = "misconfigured"


class UpstreamTimeoutError(VoiceGraphError):
    status_code = 504
    code = "timeout"
