"""PCM chunks → one encoded file: ordered joins, loudness, encoding."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np

from voicegraph.audio.dsp import fade, normalize_loudness, to_int16
from voicegraph.audio.formats import AudioFormat, audio_format, content_type
from voicegraph.core.errors import EncodingError
from voicegraph.core.settings import Settings

with warnings.catch_warnings():
    # pydub warns at import when no system ffmpeg is on PATH; we point it at
    # the ffmpeg shipped in the imageio-ffmpeg wheel instead.
    warnings.simplefilter("ignore", RuntimeWarning)
    from pydub import AudioSegment

import imageio_ffmpeg

AudioSegment.converter = imageio_ffmpeg.get_ffmpeg_exe()


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
        pieces.append(fade(np.asarray(part, dtype=np.float32), fade_samples))
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(pieces)


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
