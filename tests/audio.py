"""Measurements the tests make on real audio."""

from __future__ import annotations

import io

import numpy as np
import soundfile


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """Any container soundfile reads (wav, flac, ogg/opus, mp3) → mono float32."""
    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return samples.mean(axis=1), rate


def median_f0(pcm: np.ndarray, rate: int, fmin: float = 50.0, fmax: float = 400.0) -> float:
    """Median fundamental frequency of the voiced 40 ms frames (autocorrelation)."""
    frame = int(0.04 * rate)
    low, high = int(rate / fmax), int(rate / fmin)
    usable = len(pcm) // frame * frame
    frames = pcm[:usable].reshape(-1, frame).astype(np.float64)
    loud = np.max(np.abs(frames), axis=1) >= 0.1 * np.max(np.abs(pcm))
    frames = frames[loud] - frames[loud].mean(axis=1, keepdims=True)
    if len(frames) == 0:
        return 0.0
    spectrum = np.fft.rfft(frames, n=2 * frame, axis=1)
    autocorrelation = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :frame]
    # Divide by the overlap so long lags are not penalised.
    autocorrelation /= (frame - np.arange(frame)) / frame
    f0s = []
    for row in autocorrelation:
        window = row[low:high]
        # The first peak near the top, not the top itself: a period's multiples
        # score as high as the period, and picking one would halve the pitch.
        lag = int(np.argmax(window >= 0.9 * window.max()))
        while lag + 1 < len(window) and window[lag + 1] > window[lag]:
            lag += 1
        if row[0] > 0 and window[lag] / row[0] > 0.5:  # clearly periodic: voiced
            f0s.append(rate / (lag + low))
    return float(np.median(f0s)) if f0s else 0.0


def speech_seconds(pcm: np.ndarray, rate: int, threshold: float = 0.02) -> float:
    """Seconds of 10 ms frames louder than `threshold` RMS."""
    frame = int(0.01 * rate)
    usable = len(pcm) // frame * frame
    rms = np.sqrt(np.mean(pcm[:usable].reshape(-1, frame) ** 2, axis=1))
    return float(np.sum(rms > threshold) * frame / rate)
