"""Small signal helpers on PCM: float32 in [-1, 1] inside, int16 on the wire."""

from __future__ import annotations

import functools

import numpy as np

# Full scale of int16 samples; to_float32 inverts as_int16 exactly.
_INT16_SCALE = 32767.0


def as_int16(pcm: np.ndarray) -> np.ndarray:
    """Float PCM → int16 samples (clipped), the form audio travels in between
    deployments: half the bytes of float32, and what every encoder takes."""
    if pcm.dtype == np.int16:
        return pcm
    return (np.clip(pcm, -1.0, 1.0) * _INT16_SCALE).astype(np.int16)


def to_float32(pcm: np.ndarray) -> np.ndarray:
    """int16 or float PCM → float32 in [-1, 1]."""
    if pcm.dtype == np.int16:
        return pcm.astype(np.float32) / np.float32(_INT16_SCALE)
    return np.asarray(pcm, dtype=np.float32)


def ms_to_samples(sample_rate: int, ms: float) -> int:
    """Whole samples in `ms` milliseconds (a pause, a fade): captions count the same."""
    return int(sample_rate * ms / 1000)


def to_int16(pcm: np.ndarray) -> bytes:
    """PCM → little-endian signed 16-bit bytes, as WAV and ffmpeg's s16le take them."""
    return as_int16(pcm).astype("<i2", copy=False).tobytes()


@functools.lru_cache(maxsize=16)
def _ramp(n: int) -> np.ndarray:
    # Every chunk of a request (and of most requests) fades over the same length.
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n, dtype=np.float32))).astype(np.float32)
    ramp.flags.writeable = False
    return ramp


def _fade_in_place(part: np.ndarray, fade_samples: int) -> None:
    n = min(fade_samples, len(part) // 2)
    if n:
        ramp = _ramp(n)
        part[:n] *= ramp
        part[-n:] *= ramp[::-1]


def fade(part: np.ndarray, fade_samples: int) -> np.ndarray:
    """`part` with a raised-cosine fade in and out over `fade_samples` each (a copy)."""
    if min(fade_samples, len(part) // 2) == 0:
        return part
    part = part.copy()
    _fade_in_place(part, fade_samples)
    return part


def faded_peak(part: np.ndarray, fade_samples: int) -> float:
    """peak(fade(to_float32(part), fade_samples)), without converting or copying the part."""
    n = min(fade_samples, len(part) // 2)
    middle = part[n : len(part) - n]
    top = max(float(middle.max()), -float(middle.min())) if len(middle) else 0.0
    if part.dtype == np.int16:
        top /= _INT16_SCALE
    edges = to_float32(np.concatenate([part[:n], part[len(part) - n :]]))
    return max(top, peak(fade(edges, n)))


def faded_int16(part: np.ndarray, fade_samples: int, gain: float) -> np.ndarray:
    """as_int16(fade(to_float32(part), fade_samples) * gain), in a few passes
    over the samples instead of a copy per step."""
    factor = gain if part.dtype == np.int16 else gain * _INT16_SCALE
    out = np.multiply(part, np.float32(factor), dtype=np.float32)
    _fade_in_place(out, fade_samples)
    np.clip(out, -_INT16_SCALE, _INT16_SCALE, out=out)
    return out.astype("<i2")


def db_to_gain(db: float) -> float:
    """Decibels → a linear amplitude factor (-6 dB ≈ 0.5)."""
    return float(10 ** (db / 20))


def peak(pcm: np.ndarray) -> float:
    return float(np.max(np.abs(pcm))) if len(pcm) else 0.0


def peak_gain(signal_peak: float, peak_dbfs: float) -> float:
    """The factor that brings a signal peaking at `signal_peak` to `peak_dbfs`."""
    if signal_peak < 1e-4:  # silence: nothing to scale
        return 1.0
    return db_to_gain(peak_dbfs) / signal_peak


def lufs_gain(pcm: np.ndarray, sample_rate: int, target_lufs: float, peak_dbfs: float) -> float:
    """The factor that brings ITU-R BS.1770 integrated loudness to
    `target_lufs`, never taking the peak above `peak_dbfs`."""
    import pyloudnorm

    meter = pyloudnorm.Meter(sample_rate)
    if len(pcm) < int(meter.block_size * sample_rate):
        return peak_gain(peak(pcm), peak_dbfs)  # too short to gate: peak is all we know
    loudness = meter.integrated_loudness(pcm.astype(np.float64))
    if not np.isfinite(loudness):
        return 1.0
    gain = db_to_gain(target_lufs - loudness)
    ceiling = db_to_gain(peak_dbfs)
    signal_peak = peak(pcm)
    if signal_peak * gain > ceiling:
        gain = ceiling / signal_peak
    return gain


def loudness_gain(
    pcm: np.ndarray, sample_rate: int, mode: str, peak_dbfs: float, target_lufs: float
) -> float:
    if mode == "peak":
        return peak_gain(peak(pcm), peak_dbfs)
    if mode == "lufs":
        return lufs_gain(pcm, sample_rate, target_lufs, peak_dbfs)
    return 1.0


def scaled(pcm: np.ndarray, gain: float) -> np.ndarray:
    return pcm if gain == 1.0 else (pcm * np.float32(gain)).astype(np.float32)
