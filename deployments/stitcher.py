"""PCM chunks → one encoded file: ordered joins, loudness, encoding."""

from __future__ import annotations

import asyncio
import io
import warnings
from dataclasses import dataclass

import numpy as np
from ray import serve

from serve_app.errors import EncodingError, UnsupportedFormatError
from serve_app.settings import Settings

with warnings.catch_warnings():
    # pydub warns at import when no system ffmpeg is on PATH; we point it at
    # the ffmpeg shipped in the imageio-ffmpeg wheel instead.
    warnings.simplefilter("ignore", RuntimeWarning)
    from pydub import AudioSegment

import imageio_ffmpeg

AudioSegment.converter = imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class AudioFormat:
    name: str
    extension: str
    content_type: str
    ffmpeg_format: str | None  # None: written without ffmpeg
    codec: str | None = None
    sample_rate: int | None = None  # forced output rate, where the codec needs one


AUDIO_FORMATS: dict[str, AudioFormat] = {
    f.name: f
    for f in (
        AudioFormat("wav", "wav", "audio/wav", None),
        AudioFormat("mp3", "mp3", "audio/mpeg", "mp3", "libmp3lame"),
        # Opus only encodes at 8/12/16/24/48 kHz.
        AudioFormat("opus", "opus", "audio/ogg; codecs=opus", "ogg", "libopus", 48_000),
        # ADTS: AAC that plays and streams without an MP4 index.
        AudioFormat("aac", "aac", "audio/aac", "adts", "aac"),
        AudioFormat("flac", "flac", "audio/flac", "flac", "flac"),
        AudioFormat("pcm", "pcm", "audio/L16", None),
    )
}


def audio_format(name: str) -> AudioFormat:
    try:
        return AUDIO_FORMATS[name]
    except KeyError:
        raise UnsupportedFormatError(
            f"format {name!r} is not supported; use one of {', '.join(AUDIO_FORMATS)}"
        ) from None


def content_type(fmt: AudioFormat, sample_rate: int) -> str:
    if fmt.name == "pcm":
        # RFC 2586: raw signed 16-bit samples; say the rate so clients can play it.
        return f"audio/L16; rate={sample_rate}; channels=1"
    return fmt.content_type


def _fade(part: np.ndarray, fade_samples: int) -> np.ndarray:
    n = min(fade_samples, len(part) // 2)
    if n == 0:
        return part
    part = part.copy()
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n, dtype=np.float32))).astype(np.float32)
    part[:n] *= ramp
    part[-n:] *= ramp[::-1]
    return part


def join_chunks(
    parts: list[np.ndarray], sample_rate: int, pause_ms: float, fade_ms: float
) -> np.ndarray:
    """Chunks in order, each faded in and out, with `pause_ms` of silence between.

    The result's length is exactly the sum of the parts plus the pauses, so a
    chunk's place in the file can be computed from the chunk durations.
    """
    fade_samples = int(sample_rate * fade_ms / 1000)
    pause = np.zeros(int(sample_rate * pause_ms / 1000), dtype=np.float32)
    pieces: list[np.ndarray] = []
    for index, part in enumerate(parts):
        if index:
            pieces.append(pause)
        pieces.append(_fade(np.asarray(part, dtype=np.float32), fade_samples))
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(pieces)


def _db_to_gain(db: float) -> float:
    return float(10 ** (db / 20))


def normalize_peak(pcm: np.ndarray, peak_dbfs: float) -> np.ndarray:
    peak = float(np.max(np.abs(pcm))) if len(pcm) else 0.0
    if peak < 1e-4:  # silence: nothing to scale
        return pcm
    return (pcm * (_db_to_gain(peak_dbfs) / peak)).astype(np.float32)


def normalize_lufs(
    pcm: np.ndarray, sample_rate: int, target_lufs: float, peak_dbfs: float
) -> np.ndarray:
    """ITU-R BS.1770 integrated loudness to `target_lufs`, never above `peak_dbfs`."""
    import pyloudnorm

    meter = pyloudnorm.Meter(sample_rate)
    if len(pcm) < int(meter.block_size * sample_rate):
        return normalize_peak(pcm, peak_dbfs)  # too short to gate: peak is all we know
    loudness = meter.integrated_loudness(pcm.astype(np.float64))
    if not np.isfinite(loudness):
        return pcm
    out = pcm * _db_to_gain(target_lufs - loudness)
    ceiling = _db_to_gain(peak_dbfs)
    peak = float(np.max(np.abs(out)))
    if peak > ceiling:
        out = out * (ceiling / peak)
    return out.astype(np.float32)


def normalize_loudness(
    pcm: np.ndarray, sample_rate: int, mode: str, peak_dbfs: float, target_lufs: float
) -> np.ndarray:
    if mode == "peak":
        return normalize_peak(pcm, peak_dbfs)
    if mode == "lufs":
        return normalize_lufs(pcm, sample_rate, target_lufs, peak_dbfs)
    return pcm


def to_int16(pcm: np.ndarray) -> bytes:
    return (np.clip(pcm, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def encode(pcm: np.ndarray, sample_rate: int, fmt: AudioFormat, bitrates: dict[str, str]) -> bytes:
    samples = to_int16(pcm)
    if fmt.name == "pcm":
        return samples
    segment = AudioSegment(data=samples, sample_width=2, frame_rate=sample_rate, channels=1)
    buffer = io.BytesIO()
    if fmt.ffmpeg_format is None:
        segment.export(buffer, format=fmt.name)
        return buffer.getvalue()
    parameters = ["-ar", str(fmt.sample_rate)] if fmt.sample_rate else []
    try:
        segment.export(
            buffer,
            format=fmt.ffmpeg_format,
            codec=fmt.codec,
            bitrate=bitrates.get(fmt.name),
            parameters=parameters,
        )
    except Exception as exc:  # pydub raises CouldntEncodeError with ffmpeg's stderr
        raise EncodingError(f"encoding to {fmt.name} failed: {exc}") from exc
    return buffer.getvalue()


@dataclass(frozen=True)
class StitchedAudio:
    data: bytes
    format: str
    content_type: str
    sample_rate: int
    duration_s: float
    chunk_durations_s: tuple[float, ...]


class AudioStitcher:
    """Ray-free: join, normalise and encode with the service's settings."""

    def __init__(self, settings: Settings):
        self.pause_ms = settings.pause_ms
        self.fade_ms = settings.fade_ms
        self.loudness = settings.loudness
        self.peak_dbfs = settings.peak_dbfs
        self.target_lufs = settings.target_lufs
        self.bitrates = settings.bitrates()

    def stitch(self, parts: list[np.ndarray], sample_rate: int, format_name: str) -> StitchedAudio:
        fmt = audio_format(format_name)
        joined = join_chunks(parts, sample_rate, self.pause_ms, self.fade_ms)
        joined = normalize_loudness(
            joined, sample_rate, self.loudness, self.peak_dbfs, self.target_lufs
        )
        return StitchedAudio(
            data=encode(joined, sample_rate, fmt, self.bitrates),
            format=fmt.name,
            content_type=content_type(fmt, sample_rate),
            sample_rate=sample_rate,
            duration_s=len(joined) / sample_rate,
            chunk_durations_s=tuple(len(part) / sample_rate for part in parts),
        )


@serve.deployment(name="Stitcher")
class Stitcher:
    def __init__(self, settings: Settings):
        self._stitcher = AudioStitcher(settings)

    async def stitch(self, parts: list[np.ndarray], sample_rate: int, format_name: str) -> StitchedAudio:
        # Encoding shells out to ffmpeg: keep the replica's event loop free meanwhile.
        return await asyncio.to_thread(self._stitcher.stitch, parts, sample_rate, format_name)
