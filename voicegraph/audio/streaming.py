"""Encoding audio while it is still being made: the streaming formats.

The whole-file path (audio/stitching.py) normalises loudness over the finished
audio; a stream cannot wait for that. Each chunk is faded like join_chunks
does and only limited to the peak ceiling, so the stream never clips, and the
same pause goes between chunks, so a streamed file is as long as a stitched one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing

import numpy as np

from voicegraph.audio.dsp import db_to_gain, fade, ms_to_samples, peak, to_float32, to_int16
from voicegraph.audio.formats import AudioFormat, ffmpeg_encode_command, wav_header
from voicegraph.core.errors import EncodingError, UnsupportedFormatError

STREAM_FORMATS = ("pcm", "wav", "mp3", "opus", "aac")

def check_stream_format(fmt: AudioFormat) -> AudioFormat:
    if fmt.name not in STREAM_FORMATS:
        raise UnsupportedFormatError(
            f"format {fmt.name!r} cannot be streamed; stream one of {', '.join(STREAM_FORMATS)}, "
            "or use POST /v1/tts for the whole file"
        )
    return fmt


def stream_piece(
    part: np.ndarray, index: int, sample_rate: int, pause_ms: float, fade_ms: float, peak_dbfs: float
) -> np.ndarray:
    """One chunk as it goes out: the pause before it (not before the first),
    faded edges, and never above the peak ceiling."""
    faded = _under(db_to_gain(peak_dbfs), fade(to_float32(part), ms_to_samples(sample_rate, fade_ms)))
    if index == 0:
        return faded
    return np.concatenate([np.zeros(ms_to_samples(sample_rate, pause_ms), dtype=np.float32), faded])


def _under(ceiling: float, audio: np.ndarray) -> np.ndarray:
    """`audio` turned down to peak at `ceiling` where it peaks above it."""
    top = peak(audio)
    return audio * (ceiling / top) if top > ceiling else audio


class ChunkInPieces:
    """One chunk sent in pieces as the engine makes them (XTTS streams within
    a chunk), shaped as `stream_piece` shapes a whole chunk: the same fades,
    so the pieces joined are `fade(chunk)`. The last `fade` samples are held
    back until the next piece or the end shows whether they close the chunk.
    The peak ceiling is kept piece by piece: a loud piece is turned down alone."""

    def __init__(self, sample_rate: int, fade_ms: float, peak_dbfs: float):
        self._fade = ms_to_samples(sample_rate, fade_ms)
        self._ceiling = db_to_gain(peak_dbfs)
        self._held = np.empty(0, np.float32)
        self._started = False

    def feed(self, piece: np.ndarray) -> np.ndarray:
        """What can go out now (possibly nothing)."""
        held, n = np.concatenate([self._held, to_float32(piece)]), self._fade
        if not self._started:
            if len(held) < 2 * n or not len(held):
                self._held = held  # too short yet: fade() fades a short chunk less
                return held[:0]
            if n:
                held[:n] = fade(held[: 2 * n], n)[:n]  # its fade in
            self._started = True
        self._held = held[len(held) - n :]
        return _under(self._ceiling, held[: len(held) - n])

    def close(self) -> np.ndarray:
        """The chunk's end, faded out."""
        if not self._started:
            return _under(self._ceiling, fade(self._held, self._fade))
        ending = fade(np.concatenate([np.ones(len(self._held), np.float32), self._held]), self._fade)
        return _under(self._ceiling, ending[len(self._held) :])


async def encode_stream(
    pieces: AsyncIterator[np.ndarray], sample_rate: int, fmt: AudioFormat, encoder_options: dict[str, list[str]]
) -> AsyncIterator[bytes]:
    """Encoded bytes as soon as each piece is encoded. Closing this generator
    (the client went away) closes `pieces`, which cancels the work behind it."""
    async with aclosing(pieces):
        if fmt.name in ("pcm", "wav"):
            if fmt.name == "wav":
                yield wav_header(sample_rate)  # of unknown length
            async for piece in pieces:
                yield to_int16(piece)
            return
        async for data in _ffmpeg_stream(pieces, sample_rate, fmt, encoder_options):
            yield data


async def _ffmpeg_stream(
    pieces: AsyncIterator[np.ndarray], sample_rate: int, fmt: AudioFormat, encoder_options: dict[str, list[str]]
) -> AsyncIterator[bytes]:
    # Write each packet as it is made, not when ffmpeg's buffer fills.
    command = ffmpeg_encode_command(fmt, sample_rate, encoder_options, "-flush_packets", "1")
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )

    async def feed() -> None:
        try:
            async for piece in pieces:
                process.stdin.write(to_int16(piece))
                await process.stdin.drain()
        finally:
            process.stdin.close()

    feeder = asyncio.create_task(feed())
    try:
        while data := await process.stdout.read(16_384):
            yield data
        await feeder  # a synthesis error surfaces here, after what was made is sent
        if await process.wait() != 0:
            detail = (await process.stderr.read()).decode(errors="replace").strip()
            raise EncodingError(f"encoding the {fmt.name} stream failed: {detail}")
    finally:
        feeder.cancel()
        # Let the feeder stop before `pieces` is closed: closing a generator
        # another task is still inside would fail.
        await asyncio.gather(feeder, return_exceptions=True)
        if process.returncode is None:
            process.kill()
            await process.wait()
