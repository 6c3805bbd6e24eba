"""The response cache's key and sidecar: Ray-free, so they test as plain functions.

An entry is the finished audio plus a JSON sidecar describing it (see
`storage.response_cache_keys`), addressed by a hash of everything that shapes
the audio, so identical requests are served without synthesis and a change to
any input, setting, engine or model simply misses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import numpy as np

from voicegraph.audio.stitching import StitchedAudio
from voicegraph.core.settings import Settings
from voicegraph.engines.base import Sampling, Voice

# Bump when a code change alters the audio an identical request gets: every
# old entry then misses instead of serving what the new code would not make.
CACHE_VERSION = 1


def _canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def voice_fingerprint(voice: Voice) -> str:
    """A preset by its id; a clone by its content, so a voice cloned again
    under the same id never gets the old voice's audio."""
    if isinstance(voice, str):
        return f"preset:{voice}"
    digest = hashlib.sha256(
        _canonical([voice.engine, voice.model, voice.method, {k: str(v) for k, v in voice.params.items()}])
    )
    for name in sorted(voice.arrays):
        array = np.ascontiguousarray(voice.arrays[name])
        digest.update(_canonical([name, array.dtype.str, list(array.shape)]))
        digest.update(array.tobytes())
    return f"clone:{digest.hexdigest()}"


def _audio_settings(settings: Settings, format_name: str, engine: str) -> dict:
    shaping = {
        "pause_ms": settings.pause_ms,
        "fade_ms": settings.fade_ms,
        "loudness": settings.loudness,
        "peak_dbfs": settings.peak_dbfs,
        "target_lufs": settings.target_lufs,
        "encoder": settings.encoder_options().get(format_name),
    }
    if engine == "xtts":
        shaping["xtts"] = settings.xtts.model_dump(
            mode="json", include={"dtype", "voice_clips", "tokens_per_char", "min_new_tokens"}
        )
    return shaping


def cache_key(
    *,
    text: str,
    normalize: bool,
    voice: Voice,
    language: str,
    speed: float,
    format_name: str,
    sampling: Sampling,
    engine: str,
    model: str,
    chunk_chars: int,
    settings: Settings,
    timed: bool = False,
) -> str:
    """sha256 hex of the request's canonical form."""
    return hashlib.sha256(
        _canonical(
            {
                "version": CACHE_VERSION,
                "text": text,
                "normalize": normalize,
                "voice": voice_fingerprint(voice),
                "language": language,
                "speed": float(speed),
                "format": format_name,
                "sampling": dataclasses.asdict(sampling),
                "engine": engine,
                "model": model,
                "chunk_chars": chunk_chars,
                # Timed entries keep their word captions: another entry.
                "timed": timed,
                "first_chunk_chars": settings.first_chunk_chars,
                "audio": _audio_settings(settings, format_name, engine),
            }
        )
    ).hexdigest()


@dataclass(frozen=True)
class CachedSpeech:
    audio: StitchedAudio
    chunks: tuple[str, ...]
    # A timed entry's word captions, as JSON captions (`captions.to_json`).
    captions: list[dict] | None = None
    words_estimated: bool | None = None


def sidecar(
    audio: StitchedAudio,
    chunks: tuple[str, ...],
    captions: list[dict] | None = None,
    words_estimated: bool | None = None,
) -> bytes:
    """What a hit needs besides the audio bytes to answer as synthesis would
    (captions, save, jobs); the audio's hash ties the two files together."""
    timed = {} if captions is None else {"captions": captions, "words_estimated": words_estimated}
    return _canonical(
        {
            **timed,
            "version": CACHE_VERSION,
            "format": audio.format,
            "content_type": audio.content_type,
            "sample_rate": audio.sample_rate,
            "duration_s": audio.duration_s,
            "chunk_durations_s": list(audio.chunk_durations_s),
            "chunks": list(chunks),
            "audio_sha256": hashlib.sha256(audio.data).hexdigest(),
        }
    )


def from_sidecar(document: bytes, data: bytes) -> CachedSpeech:
    """The audio and chunks an entry holds; ValueError when the two files do
    not belong together (two writers of one key raced): a miss, not a wrong answer."""
    meta = json.loads(document)
    if meta.get("version") != CACHE_VERSION or hashlib.sha256(data).hexdigest() != meta["audio_sha256"]:
        raise ValueError("the cached audio does not match its sidecar")
    if len(meta["chunks"]) != len(meta["chunk_durations_s"]):
        raise ValueError("the sidecar's chunks and durations differ in number")
    audio = StitchedAudio(
        data=data,
        format=meta["format"],
        content_type=meta["content_type"],
        sample_rate=meta["sample_rate"],
        duration_s=meta["duration_s"],
        chunk_durations_s=tuple(meta["chunk_durations_s"]),
    )
    return CachedSpeech(audio, tuple(meta["chunks"]), meta.get("captions"), meta.get("words_estimated"))
