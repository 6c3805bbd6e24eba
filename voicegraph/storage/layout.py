"""Where audio and voices are kept: the one storage layout, as keys.

Layout (ARCHITECTURE.md), the same on every backend:

    voice_samples/voice_<slug>_sample_<YYYYmmdd_HHMMSS>.wav
    voice_profiles/voice_<slug>.npy   voice_profiles/voice_<slug>.json
    tts_generations/TTS_voice_<slug>_<YYYYmmdd_HHMMSS>.<ext>
    tts_cache/<sha256>.<ext>   tts_cache/<sha256>.json

Two writes in the same second get `_2`, `_3`, … before the extension.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone

from anyascii import anyascii

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


def is_slug(text: str) -> bool:
    """Whether `text` could be a slug: what every stored voice's id is. Checked
    before a user-given id becomes a key, so no id, however odd (a NUL byte,
    10,000 characters), ever reaches the file system or the bucket."""
    return 0 < len(text) <= MAX_SLUG_CHARS and slugify(text) == text


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


def with_suffix(key: str, attempt: int) -> str:
    """`key` for the `attempt`-th writer of one name: a.wav, a_2.wav, a_3.wav …"""
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
