"""Voice references: decoding uploads, trimming them, measuring pitch and rate."""

from __future__ import annotations

import re
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.helpers.audio import CODECS, encode_audio, wav_bytes
from voicegraph.audio.reference import (
    ANALYSIS_RATE,
    Reference,
    decode_audio,
    f0_track,
    median_f0,
    prepare_reference,
    voice_stats,
)
from voicegraph.core.errors import AudioTooShortError, InvalidAudioError, SilentAudioError
from voicegraph.core.settings import VoiceSettings
from voicegraph.engines.espeak import EspeakEngine

RATE = ANALYSIS_RATE
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
TEXT = (
    "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore. "
    "Peter Piper picked a peck of pickled peppers."
)
REFUSALS = (InvalidAudioError, AudioTooShortError, SilentAudioError)


@pytest.fixture(scope="module")
def engine():
    return EspeakEngine()


@pytest.fixture(scope="module")
def speech(engine):
    """Four seconds of real speech at the analysis rate."""
    return engine.synthesize(TEXT, "default", "en-us", 1.0)[: 4 * RATE]


def harmonic(hz: float, seconds: float = 2.0, rate: int = RATE) -> np.ndarray:
    """A vowel-like tone: the fundamental and three weaker harmonics."""
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * sum(np.sin(2 * np.pi * hz * k * t) / k for k in range(1, 5))).astype(np.float32)


# Pitch


@pytest.mark.parametrize("hz", [100.0, 150.0, 220.0])
def test_f0_of_a_harmonic_tone(hz):
    pcm = harmonic(hz)
    track = f0_track(pcm, RATE)
    assert len(track) == len(pcm) // int(0.04 * RATE)  # every frame is voiced
    assert median_f0(pcm, RATE) == pytest.approx(hz, rel=0.03)


def test_white_noise_is_hardly_voiced():
    noise = np.random.default_rng(0).normal(0, 0.1, 4 * RATE).astype(np.float32)
    frames = len(noise) // int(0.04 * RATE)
    assert len(f0_track(noise, RATE)) <= 0.05 * frames


@pytest.mark.parametrize("pcm", [np.zeros(0), np.zeros(100), np.zeros(RATE)], ids=["empty", "short", "zeros"])
def test_no_pitch_in_silence(pcm):
    assert len(f0_track(pcm, RATE)) == 0
    assert median_f0(pcm, RATE) == 0.0


# Voice statistics


def test_espeak_voices_in_pitch_order(engine):
    stats = {voice: voice_stats(engine.synthesize(TEXT, voice, "en-us", 1.0), RATE) for voice in
             ("deep", "default", "soft", "bright")}  # fmt: skip
    medians = [s.f0_median for s in stats.values()]
    assert medians == sorted(medians), medians
    assert 90 < stats["default"].f0_median < 115
    for s in stats.values():
        assert s.f0_low < s.f0_median < s.f0_high
        assert 1 < s.range_semitones() < 12


def test_speaking_rate_follows_speed(engine):
    normal = voice_stats(engine.synthesize(TEXT, "default", "en-us", 1.0), RATE)
    fast = voice_stats(engine.synthesize(TEXT, "default", "en-us", 1.6), RATE)
    assert 2 < normal.syllables_per_s < 8
    assert fast.syllables_per_s / normal.syllables_per_s > 1.3


@pytest.mark.parametrize("pcm", [np.zeros(RATE, dtype=np.float32), np.zeros(0, dtype=np.float32)])
def test_stats_of_silence_are_refused(pcm):
    with pytest.raises(SilentAudioError):
        voice_stats(pcm, RATE)


# Decoding

@pytest.mark.parametrize("codec", CODECS)
def test_decode_round_trip(codec, speech):
    data = encode_audio(speech, RATE, codec)
    pcm = decode_audio(data)
    assert pcm.dtype == np.float32 and pcm.ndim == 1
    # Lossy codecs pad the stream; ffmpeg drops the padding where the file says how much.
    assert abs(len(pcm) / RATE - len(speech) / RATE) < 0.1
    assert median_f0(pcm, RATE) == pytest.approx(median_f0(speech, RATE), rel=0.05)


@pytest.mark.parametrize("codec", ["wav", "mp3"])
def test_decode_ignores_trailing_junk(codec, speech):
    data = encode_audio(speech, RATE, codec) + np.random.default_rng(1).bytes(4000)
    assert abs(len(decode_audio(data)) - len(speech)) < 0.1 * RATE


def test_decode_downmixes_stereo_to_the_mean():
    left, right = harmonic(150.0, 1.0), harmonic(330.0, 1.0)
    pcm = decode_audio(wav_bytes(np.stack([left, right], axis=1), RATE))
    np.testing.assert_allclose(pcm, (left + right) / 2, atol=1e-3)


@pytest.mark.parametrize("rate", [RATE, 16000])
def test_decode_resamples(rate):
    data = encode_audio(harmonic(150.0, 2.0, 48000), 48000, "wav")
    pcm = decode_audio(data, rate=rate)
    assert len(pcm) == 2 * rate
    assert median_f0(pcm, rate) == pytest.approx(150.0, rel=0.03)


def test_decode_stops_at_max_seconds(speech):
    assert len(decode_audio(wav_bytes(speech, RATE), max_seconds=1.5)) == int(1.5 * RATE)


def _png() -> bytes:
    command = [FFMPEG, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "color=c=red:s=8x8",
               "-frames:v", "1", "-c:v", "png", "-f", "image2pipe", "pipe:1"]  # fmt: skip
    return subprocess.run(command, capture_output=True, check=True).stdout


def _wav_header() -> bytes:
    return wav_bytes(harmonic(150.0, 0.1), RATE)[:44]


NOT_AUDIO = {
    "empty": lambda: b"",
    "text": lambda: b"hello world",
    "png magic": lambda: b"\x89PNG\r\n\x1a\n" + b"junk" * 64,
    "png image": _png,
    # Text formats that would make ffmpeg open other files.
    "ffconcat": lambda: b"ffconcat version 1.0\nfile /etc/passwd\n",
    "playlist": lambda: b"#EXTM3U\n#EXTINF:1,\n/etc/passwd\n",
    "wav cut in its header": lambda: _wav_header()[:30],
    "wav header alone": _wav_header,
    "riff then garbage": lambda: b"RIFF\x24\x08\x00\x00WAVE" + np.random.default_rng(2).bytes(600),
}


@pytest.mark.parametrize("make", NOT_AUDIO.values(), ids=NOT_AUDIO.keys())
def test_decode_refuses_what_is_not_audio(make):
    with pytest.raises(InvalidAudioError) as caught:
        decode_audio(make())
    assert caught.value.code == "invalid_audio"
    assert caught.value.status_code == 422
    assert "WAV, MP3, OGG/Opus, FLAC or M4A" in caught.value.message
    assert "/tmp" not in caught.value.message  # no server paths in what the caller sees


# Trimming


def test_defaults_match_the_settings():
    voices = VoiceSettings()
    reference = prepare_reference(harmonic(150.0, 40.0), RATE)
    assert len(reference.pcm) / RATE <= voices.max_speech_s
    with pytest.raises(AudioTooShortError):
        prepare_reference(harmonic(150.0, voices.min_speech_s - 0.2), RATE)


def test_silence_is_trimmed_from_both_ends(speech):
    silence = np.zeros(2 * RATE, dtype=np.float32)
    reference = prepare_reference(np.concatenate([silence, speech, silence]), RATE)
    assert isinstance(reference, Reference)
    assert reference.rate == RATE
    assert reference.pcm.dtype == np.float32
    assert abs(len(reference.pcm) - len(speech)) < 0.1 * RATE
    assert reference.original_s == pytest.approx(len(speech) / RATE + 4)
    assert 3.0 < reference.speech_s <= len(reference.pcm) / RATE


def test_quiet_recordings_trim_like_loud_ones(speech):
    loud = prepare_reference(speech, RATE)
    quiet = prepare_reference(speech * 0.1, RATE)  # 20 dB down
    assert len(quiet.pcm) / RATE == pytest.approx(len(loud.pcm) / RATE, abs=0.1)
    # The -60 dBFS floor, 28 dB under this one's loudest frame, drops a few faint consonants.
    assert 0.9 * loud.speech_s <= quiet.speech_s <= loud.speech_s


@pytest.mark.parametrize(
    "pcm",
    [
        np.zeros(5 * RATE, dtype=np.float32),
        # -70 dBFS of hiss: an open microphone in a quiet room, and nobody speaking.
        np.random.default_rng(3).normal(0, 10 ** (-70 / 20), 5 * RATE).astype(np.float32),
        np.zeros(0, dtype=np.float32),
    ],
    ids=["zeros", "hiss", "empty"],
)
def test_silent_recordings_are_refused(pcm):
    with pytest.raises(SilentAudioError) as caught:
        prepare_reference(pcm, RATE)
    assert caught.value.code == "silent_audio"


def test_short_speech_is_refused(speech):
    with pytest.raises(AudioTooShortError) as caught:
        prepare_reference(speech[: int(1.5 * RATE)], RATE, min_speech_s=3.0)
    assert caught.value.code == "audio_too_short"
    found, needed = (float(x) for x in re.findall(r"(\d+(?:\.\d+)?) s", caught.value.message))
    assert 1.0 <= found <= 1.5
    assert needed == 3.0


def test_long_speech_is_cut(engine):
    sentence = engine.synthesize(TEXT, "default", "en-us", 1.0)
    long = np.tile(sentence, int(np.ceil(45 * RATE / len(sentence))))[: 45 * RATE]
    reference = prepare_reference(long, RATE, max_speech_s=30.0)
    assert 29.0 <= len(reference.pcm) / RATE <= 30.0
    assert reference.original_s == pytest.approx(45.0)
    assert 20.0 < reference.speech_s <= 30.0


def test_non_finite_samples_are_refused(speech):
    broken = speech.copy()
    broken[100] = np.nan
    with pytest.raises(InvalidAudioError):
        prepare_reference(broken, RATE)


# Properties

# At 100 Hz a frame is one sample (at 150 Hz two, 13 ms), so a few thousand
# samples reach both the minimum (300 frames) and the maximum (3000) of speech.
samples = hnp.arrays(np.float32, st.integers(0, 4000), elements=st.floats(width=32))


@settings(max_examples=150, deadline=None)
@given(samples, st.sampled_from([100, 150, 1000, RATE]))
def test_prepare_reference_accepts_or_refuses(pcm, rate):
    try:
        reference = prepare_reference(pcm, rate)
    except REFUSALS as refusal:
        assert refusal.status_code == 422
        return
    assert reference.speech_s >= 3.0
    assert len(reference.pcm) <= 30.0 * rate
    assert reference.pcm.dtype == np.float32


HEADERS = [b"", b"RIFF", _wav_header(), b"ID3\x04\x00", b"\xff\xfb\x90\x00", b"OggS\x00\x02", b"fLaC",
           b"\x00\x00\x00\x18ftypM4A "]  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(HEADERS), st.binary(max_size=600))
def test_decode_only_ever_refuses_as_invalid_audio(header, body):
    try:
        pcm = decode_audio(header + body)
    except InvalidAudioError:
        return
    assert pcm.dtype == np.float32 and pcm.ndim == 1 and len(pcm) > 0
