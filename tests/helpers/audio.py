"""Measurements the tests make on real audio."""

from __future__ import annotations

import io
import os
import subprocess
import tempfile
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import soundfile

# Re-exported: the tests measure pitch with the service's own estimator.
from voicegraph.audio.reference import median_f0

__all__ = ["CODECS", "decode", "ffmpeg_decode", "encode_audio", "median_f0", "speech_seconds", "wav_bytes"]


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """Any container soundfile reads (wav, flac, ogg/opus, mp3) → mono float32;
    others (AAC, streamed WAV of unknown length) through ffmpeg at 22.05 kHz."""
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except soundfile.LibsndfileError:
        return ffmpeg_decode(data), 22050
    return samples.mean(axis=1), rate


def ffmpeg_decode(data: bytes, rate: int = 22050, seekable: bool = False) -> np.ndarray:
    """`data` decoded by ffmpeg, from a pipe or (`seekable`) a file: only
    from a file does ffmpeg drop an MP3's end padding, as players do."""
    with tempfile.TemporaryDirectory() as folder:
        source = "pipe:0"
        if seekable:
            source = os.path.join(folder, "input")
            with open(source, "wb") as file:
                file.write(data)
        result = subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", source,
             "-f", "f32le", "-ac", "1", "-ar", str(rate), "pipe:1"],
            input=None if seekable else data, capture_output=True, check=True,
        )
    return np.frombuffer(result.stdout, dtype="<f4")


def speech_seconds(pcm: np.ndarray, rate: int, threshold: float = 0.02) -> float:
    """Seconds of 10 ms frames louder than `threshold` RMS."""
    frame = int(0.01 * rate)
    usable = len(pcm) // frame * frame
    rms = np.sqrt(np.mean(pcm[:usable].reshape(-1, frame) ** 2, axis=1))
    return float(np.sum(rms > threshold) * frame / rate)


# Codec → (file extension, ffmpeg arguments): what clients upload.
CODECS = {
    "wav": ("wav", ()),
    "flac": ("flac", ()),
    "mp3": ("mp3", ("-c:a", "libmp3lame", "-b:a", "128k")),
    "opus": ("ogg", ("-c:a", "libopus", "-b:a", "48k", "-ar", "48000")),
    # ffmpeg writes an M4A's index at the end, which a pipe could not reach.
    "m4a": ("m4a", ("-c:a", "aac", "-b:a", "128k")),
}


def encode_audio(pcm: np.ndarray, rate: int, codec: str) -> bytes:
    """Float PCM (interleaved when 2-D) → a file of `codec`, encoded by ffmpeg."""
    extension, args = CODECS[codec]
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"audio.{extension}"
        subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-f", "f32le", "-ar", str(rate),
             "-ac", str(channels), "-i", "pipe:0", *args, str(path)],
            input=np.ascontiguousarray(pcm, dtype="<f4").tobytes(),
            check=True,
        )  # fmt: skip
        return path.read_bytes()


def wav_bytes(pcm: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, pcm, rate, format="WAV")
    return buffer.getvalue()


def speech_end_s(pcm: np.ndarray, rate: int) -> float:
    """End of the last 10 ms of speech: of sound within 30 dB of the loudest
    10 ms. The honest end for a last word, not the audio's: an engine may
    close with a pause no word says (Piper's final punctuation), holding
    faint noise and decoder clicks (up to -38 dB)."""
    frame = rate // 100
    rms = np.sqrt(np.mean(pcm[: len(pcm) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    return (np.flatnonzero(rms > 0.03 * rms.max())[-1] + 1) * frame / rate


def assert_well_timed(words, end_s: float) -> None:
    """Word times inside [0, end_s], each in order and none overlapping the next."""
    for word in words:
        assert 0 <= word.start_s <= word.end_s <= end_s
    for before, after in zip(words, words[1:]):
        assert before.end_s <= after.start_s
