"""Small signal helpers on float32 PCM in [-1, 1]."""

from __future__ import annotations

import numpy as np


def fade(part: np.ndarray, fade_samples: int) -> np.ndarray:
    """`part` with a raised-cosine fade in and out over `fade_samples` each (a copy)."""
    n = min(fade_samples, len(part) // 2)
    if n == 0:
        return part
    part = part.copy()
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n, dtype=np.float32))).astype(np.float32)
    part[:n] *= ramp
    part[-n:] *= ramp[::-1]
    return part


def db_to_gain(db: float) -> float:
    """Decibels → a linear amplitude factor (-6 dB ≈ 0.5)."""
    return float(10 ** (db / 20))


def normalize_peak(pcm: np.ndarray, peak_dbfs: float) -> np.ndarray:
    peak = float(np.max(np.abs(pcm))) if len(pcm) else 0.0
    if peak < 1e-4:  # silence: nothing to scale
        return pcm
    return (pcm * (db_to_gain(peak_dbfs) / peak)).astype(np.float32)


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
    out = pcm * db_to_gain(target_lufs - loudness)
    ceiling = db_to_gain(peak_dbfs)
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
