"""Voice references: arbitrary uploaded bytes → clean mono speech, and its measurements.

Ray-free and pure, so the Cloner deployment and the tests share one code path.
Decoding shells out to the ffmpeg binary of the imageio-ffmpeg wheel; the
analysis is numpy only.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass

import imageio_ffmpeg
import numpy as np

from voicegraph.audio.dsp import db_to_gain
from voicegraph.core.errors import AudioTooShortError, InvalidAudioError, SilentAudioError

ANALYSIS_RATE = 22050

_DECODE_TIMEOUT_S = 60.0
_ACCEPTED = "send WAV, MP3, OGG/Opus, FLAC or M4A"
# Only audio demuxers may open an upload. Without this list ffmpeg would also
# accept images, and text formats that open other files (concat, HLS) — an
# upload must never make the server read anything but itself.
_DEMUXERS = "wav,w64,aiff,caf,mp3,aac,flac,ogg,mov,matroska"
_FFMPEG_REASONS = (
    ("not on whitelist", "it is not in an audio format"),
    ("matches no streams", "it has no audio stream"),
    ("Invalid data found", "it is not in a format we recognise"),
)

_FRAME_S = 0.01
# Silence is judged per 10 ms frame against the loudest frame: 40 dB below it
# is below any speech sound but above the hum and hiss of an ordinary room, so
# quiet recordings trim as well as loud ones. A frame under -60 dBFS is
# silence however quiet the loudest frame is: there is nothing to clone there.
_RELATIVE_SILENCE_DB = -40.0
_ABSOLUTE_SILENCE_DBFS = -60.0
# Frames kept either side of the speech so trimming never clips an onset or a decay.
_TRIM_PAD_FRAMES = 2
# A cut at max_speech_s goes at the quietest frame of its last second.
_CUT_SEARCH_S = 1.0

# Syllables are the peaks of the energy envelope smoothed over 50 ms. Two
# peaks count as two only if the envelope dips between them by 2 dB and they
# are 80 ms apart: fast speech runs at 8 syllables a second, so a 100 ms gap
# already merges real syllables (measured on eSpeak at 1.6x speed), while
# closer maxima are one vowel's ripple.
_SMOOTH_FRAMES = 5
_MIN_SYLLABLE_GAP_S = 0.08
_MIN_SYLLABLE_DIP_DB = 2.0


# Decoding


def decode_audio(data: bytes, rate: int = ANALYSIS_RATE, max_seconds: float = 300.0) -> np.ndarray:
    """Any audio file ffmpeg reads → mono float32 at `rate`, at most `max_seconds` long."""
    if not data:
        raise InvalidAudioError(f"the file is empty; {_ACCEPTED}")
    # A file, not a pipe: MP4/M4A often keep their index (moov) at the end,
    # which a demuxer can only reach by seeking.
    fd, path = tempfile.mkstemp(prefix="vg-reference-")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        samples = _run_ffmpeg(path, rate, max_seconds)
    finally:
        os.unlink(path)
    if samples.size == 0:
        raise InvalidAudioError(f"could not decode the file as audio: it holds no samples; {_ACCEPTED}")
    return samples


def _run_ffmpeg(path: str, rate: int, max_seconds: float) -> np.ndarray:
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-nostdin", "-hide_banner", "-v", "error",
        "-protocol_whitelist", "file",
        "-format_whitelist", _DEMUXERS,
        "-i", path,
        "-map", "0:a:0",  # the first audio stream; a missing one is an error, not silence
        "-t", f"{max_seconds:.3f}",
        # Mono as the mean of the channels: ffmpeg's default sums them at -3 dB
        # each, which lifts a stereo file by 3 dB and can go past full scale.
        "-ac", "1", "-rematrix_maxval", "1.0",
        "-ar", str(rate), "-f", "f32le", "pipe:1",
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, timeout=_DECODE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise InvalidAudioError(
            f"could not decode the file as audio: decoding took over {_DECODE_TIMEOUT_S:.0f} s; {_ACCEPTED}"
        ) from None
    if result.returncode != 0:
        reason = _ffmpeg_reason(result.stderr.decode("utf-8", "replace"), path)
        raise InvalidAudioError(f"could not decode the file as audio: {reason}; {_ACCEPTED}")
    # A whole number of samples: ffmpeg only stops mid-sample when killed.
    usable = len(result.stdout) // 4 * 4
    return np.frombuffer(result.stdout[:usable], dtype="<f4").astype(np.float32)


def _ffmpeg_reason(stderr: str, path: str) -> str:
    """ffmpeg's first complaint, in words a caller can act on."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return "ffmpeg failed without saying why"
    for marker, reason in _FFMPEG_REASONS:
        if marker in lines[0]:
            return reason
    # Our temp path means nothing to the caller; the log prefix neither.
    reason = re.sub(r"^\[[^\]]*\]\s*", "", lines[0].replace(path, "the file"))
    return reason.rstrip(".")[:200]


# Trimming


@dataclass(frozen=True)
class Reference:
    pcm: np.ndarray  # mono float32, silence trimmed, at most max_speech_s long
    rate: int
    speech_s: float  # seconds of speech frames in pcm
    original_s: float  # seconds decoded before trimming


def _frame_length(rate: int) -> int:
    return max(1, round(_FRAME_S * rate))


def _frame_rms(pcm: np.ndarray, frame: int) -> np.ndarray:
    # float64: squares of loud float32 samples overflow float32.
    usable = len(pcm) // frame * frame
    frames = pcm[:usable].astype(np.float64).reshape(-1, frame)
    return np.sqrt(np.mean(frames**2, axis=1))


def _speech_frames(rms: np.ndarray) -> np.ndarray:
    """Which frames are speech rather than silence (see _RELATIVE_SILENCE_DB)."""
    if rms.size == 0:
        return np.zeros(0, dtype=bool)
    threshold = max(rms.max() * db_to_gain(_RELATIVE_SILENCE_DB), db_to_gain(_ABSOLUTE_SILENCE_DBFS))
    return rms >= threshold


def prepare_reference(
    pcm: np.ndarray, rate: int, *, min_speech_s: float = 3.0, max_speech_s: float = 30.0
) -> Reference:
    """Trim silence from both ends, cut to `max_speech_s`, refuse too little speech."""
    pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(pcm)):
        raise InvalidAudioError("the audio contains invalid (NaN or infinite) samples")
    frame = _frame_length(rate)
    rms = _frame_rms(pcm, frame)
    speech = _speech_frames(rms)
    if not speech.any():
        raise SilentAudioError("the recording is silent: no speech was found in it")
    voiced = np.flatnonzero(speech)
    first, end = int(voiced[0]), int(voiced[-1]) + 1
    # From the frame's real length: at odd rates a frame is not exactly 10 ms.
    frames_per_s = rate / frame
    max_frames = max(1, int(max_speech_s * frames_per_s))
    if end - first > max_frames:
        end = _quiet_cut(rms, first, first + max_frames, round(_CUT_SEARCH_S * frames_per_s))
        end = first + int(np.flatnonzero(speech[first:end])[-1]) + 1
    start = max(first - _TRIM_PAD_FRAMES, 0)
    stop = min(end + _TRIM_PAD_FRAMES, len(rms), start + max_frames)
    speech_s = round(float(np.sum(speech[start:stop])) * frame / rate, 3)
    if speech_s < min_speech_s:
        raise AudioTooShortError(
            f"the recording has {speech_s:.1f} s of speech after trimming silence; "
            f"at least {min_speech_s:g} s is needed"
        )
    return Reference(
        pcm=pcm[start * frame : stop * frame].copy(),
        rate=rate,
        speech_s=speech_s,
        original_s=len(pcm) / rate,
    )


def _quiet_cut(rms: np.ndarray, first: int, limit: int, search: int) -> int:
    """The frame to end at: the quietest of the `search` frames before `limit`."""
    window_start = max(first + 1, limit - search)
    window = rms[window_start:limit]
    # The last of equally quiet frames keeps the most speech.
    return window_start + len(window) - 1 - int(np.argmin(window[::-1]))


# Measuring


def f0_track(pcm: np.ndarray, rate: int, fmin: float = 50.0, fmax: float = 400.0) -> np.ndarray:
    """Fundamental frequency (Hz) of each voiced 40 ms frame, by autocorrelation."""
    frame = int(0.04 * rate)
    # Lag 0 is the signal itself, never a period.
    low, high = max(1, int(rate / fmax)), int(rate / fmin)
    usable = len(pcm) // frame * frame if frame else 0
    if usable == 0:
        return np.zeros(0)
    pcm = np.asarray(pcm, dtype=np.float64)
    frames = pcm[:usable].reshape(-1, frame)
    loud = np.max(np.abs(frames), axis=1) >= 0.1 * np.max(np.abs(pcm))
    frames = frames[loud] - frames[loud].mean(axis=1, keepdims=True)
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
    return np.asarray(f0s, dtype=np.float64)


def median_f0(pcm: np.ndarray, rate: int, fmin: float = 50.0, fmax: float = 400.0) -> float:
    """Median fundamental frequency of the voiced frames; 0.0 when none is voiced."""
    track = f0_track(pcm, rate, fmin, fmax)
    return float(np.median(track)) if track.size else 0.0


@dataclass(frozen=True)
class VoiceStats:
    f0_median: float  # Hz
    f0_low: float  # 10th percentile, Hz
    f0_high: float  # 90th percentile, Hz
    syllables_per_s: float  # per second of speech, pauses excluded

    def range_semitones(self) -> float:
        return float(12 * np.log2(self.f0_high / self.f0_low))


def voice_stats(pcm: np.ndarray, rate: int) -> VoiceStats:
    """Pitch and speaking rate of a speech recording."""
    track = f0_track(pcm, rate)
    if track.size == 0:
        raise SilentAudioError("no voiced speech was found in the recording")
    low, median, high = np.percentile(track, [10, 50, 90])
    return VoiceStats(
        f0_median=float(median),
        f0_low=float(low),
        f0_high=float(high),
        syllables_per_s=_syllable_rate(np.asarray(pcm, dtype=np.float32), rate),
    )


def _syllable_rate(pcm: np.ndarray, rate: int) -> float:
    frame = _frame_length(rate)
    rms = _frame_rms(pcm, frame)
    speech = _speech_frames(rms)
    if not speech.any():
        return 0.0
    smooth = np.convolve(rms, np.ones(_SMOOTH_FRAMES) / _SMOOTH_FRAMES, mode="same")
    envelope = 20 * np.log10(smooth + 1e-9)
    peaks = _envelope_peaks(envelope, speech, max(1, round(_MIN_SYLLABLE_GAP_S * rate / frame)))
    return float(len(peaks) / (np.sum(speech) * frame / rate))


def _envelope_peaks(envelope: np.ndarray, speech: np.ndarray, min_gap: int) -> list[int]:
    """Local maxima in speech frames, merging neighbours too close or without a dip between."""
    inner = envelope[1:-1]
    maxima = np.flatnonzero((inner > envelope[:-2]) & (inner >= envelope[2:])) + 1
    peaks: list[int] = []
    for index in maxima[speech[maxima]]:
        if peaks:
            last = peaks[-1]
            dip = envelope[last : index + 1].min()
            if index - last < min_gap or min(envelope[last], envelope[index]) - dip < _MIN_SYLLABLE_DIP_DB:
                # One syllable: keep its louder maximum.
                if envelope[index] > envelope[last]:
                    peaks[-1] = int(index)
                continue
        peaks.append(int(index))
    return peaks
