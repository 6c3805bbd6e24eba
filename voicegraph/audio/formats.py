"""The audio formats the service writes, and their content types."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from voicegraph.core.errors import UnsupportedFormatError


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


def ffmpeg_encode_command(
    fmt: AudioFormat,
    sample_rate: int,
    encoder_options: dict[str, list[str]],
    *output_options: str,
    output: str = "pipe:1",
) -> list[str]:
    """ffmpeg reading mono s16le PCM at `sample_rate` on stdin and writing
    `fmt` to `output` (stdout, or a file it overwrites)."""
    import imageio_ffmpeg

    return [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error",
        "-f", "s16le", "-ar", str(sample_rate), "-ac", "1", "-i", "pipe:0",
        "-c:a", fmt.codec, *encoder_options.get(fmt.name, ()),
        *(["-ar", str(fmt.sample_rate)] if fmt.sample_rate else []),
        *output_options, "-f", fmt.ffmpeg_format, "-y", output,
    ]


# A streamed WAV's length is unknown when its header is sent: 0xFFFFFFFF is
# what ffmpeg, browsers and soundfile-on-pipe readers take as "until the end".
_UNKNOWN_SIZE = 0xFFFFFFFF


def wav_header(sample_rate: int, data_bytes: int | None = None) -> bytes:
    """The 44-byte header of a mono 16-bit PCM WAV holding `data_bytes` (None: unknown)."""
    riff_size = _UNKNOWN_SIZE if data_bytes is None else 36 + data_bytes
    data_size = _UNKNOWN_SIZE if data_bytes is None else data_bytes
    return (
        b"RIFF" + struct.pack("<I", riff_size) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data" + struct.pack("<I", data_size)
    )
