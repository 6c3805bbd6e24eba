import numpy as np
import pyloudnorm
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.audio import decode, median_f0
from voicegraph.audio.dsp import loudness_gain, scaled
from voicegraph.audio.formats import AUDIO_FORMATS, audio_format
from voicegraph.audio.stitching import Stitcher, join_chunks
from voicegraph.core.errors import UnsupportedFormatError
from voicegraph.core.settings import Settings

RATE = 22050


def tone(seconds: float, hz: float = 220.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def normalize(pcm: np.ndarray, mode: str, peak_dbfs: float, target_lufs: float = -16.0) -> np.ndarray:
    return scaled(pcm, loudness_gain(pcm, RATE, mode, peak_dbfs, target_lufs))


def test_join_keeps_order_and_exact_length():
    parts = [tone(0.5, 200), tone(0.3, 300), tone(0.2, 400)]
    joined = join_chunks(parts, RATE, pause_ms=100, fade_ms=5)
    pause = int(RATE * 0.1)
    assert len(joined) == sum(len(p) for p in parts) + 2 * pause
    # Each part sits where the chunk durations say it does, in order.
    start = 0
    for part, hz in zip(parts, (200, 300, 400)):
        assert median_f0(joined[start : start + len(part)], RATE) == pytest.approx(hz, rel=0.03)
        start += len(part)
        assert not np.any(joined[start : start + pause])  # the pause is silent
        start += pause


def test_joins_are_click_free():
    # A sine cut at its peak would click; the fades bring every edge to zero.
    parts = [tone(0.3, 250, 0.9) + 0.5, tone(0.3, 250, 0.9) - 0.5]
    joined = join_chunks(parts, RATE, pause_ms=0, fade_ms=8)
    edge = len(parts[0])
    assert abs(joined[edge - 1]) < 0.01 and abs(joined[edge]) < 0.01
    assert abs(joined[0]) < 0.01 and abs(joined[-1]) < 0.01
    # No sample-to-sample jump larger than the signal's own steepest slope.
    assert np.max(np.abs(np.diff(joined))) < 0.2


def test_join_of_nothing_is_empty():
    assert len(join_chunks([], RATE, 100, 5)) == 0


def test_peak_normalisation():
    out = normalize(tone(1.0, amplitude=0.1), "peak", peak_dbfs=-1.0)
    assert np.max(np.abs(out)) == pytest.approx(10 ** (-1 / 20), rel=1e-3)
    silence = np.zeros(1000, dtype=np.float32)
    assert not np.any(normalize(silence, "peak", peak_dbfs=-1.0))


def test_lufs_normalisation_reaches_target_without_exceeding_peak():
    quiet = tone(3.0, amplitude=0.05)
    out = normalize(quiet, "lufs", peak_dbfs=-1.0, target_lufs=-20.0)
    assert pyloudnorm.Meter(RATE).integrated_loudness(out.astype(np.float64)) == pytest.approx(-20.0, abs=0.3)
    loud_target = normalize(quiet, "lufs", peak_dbfs=-1.0, target_lufs=0.0)
    assert np.max(np.abs(loud_target)) <= 10 ** (-1 / 20) + 1e-6


@pytest.mark.parametrize("name", sorted(AUDIO_FORMATS))
def test_every_format_encodes_and_decodes(name):
    stitcher = Stitcher(Settings())
    parts = [tone(0.6, 220), tone(0.6, 330)]
    result = stitcher.stitch(parts, RATE, name)
    expected_seconds = 1.2 + Settings().pause_ms / 1000
    assert result.duration_s == pytest.approx(expected_seconds, abs=1e-3)
    assert result.chunk_durations_s == pytest.approx((0.6, 0.6), abs=1e-3)
    if name == "pcm":
        assert result.content_type == f"audio/L16; rate={RATE}; channels=1"
        pcm = np.frombuffer(result.data, dtype="<i2").astype(np.float32) / 32768
        rate = RATE
    else:
        pcm, rate = decode(result.data)
    assert len(pcm) / rate == pytest.approx(expected_seconds, abs=0.08)  # codecs pad a little
    assert median_f0(pcm[: int(0.5 * rate)], rate) == pytest.approx(220, rel=0.05)


def test_unknown_format_is_refused():
    with pytest.raises(UnsupportedFormatError, match="wav, mp3, opus, aac, flac, pcm"):
        audio_format("m4a")


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=3000),
    st.integers(min_value=0, max_value=400),
    st.booleans(),
    st.floats(min_value=0.1, max_value=4.0),
    st.integers(min_value=0, max_value=2**31),
)
def test_the_fast_int16_path_matches_the_plain_steps(length, fade_samples, as_int16_input, gain, seed):
    from voicegraph.audio.dsp import as_int16, fade, faded_int16, faded_peak, peak, to_float32

    part = np.random.default_rng(seed).uniform(-1, 1, length).astype(np.float32)
    if as_int16_input:
        part = as_int16(part)
    plain = fade(to_float32(part), fade_samples)
    assert faded_peak(part, fade_samples) == pytest.approx(peak(plain), abs=1e-6)
    # Within one step of 16-bit rounding.
    fast = faded_int16(part, fade_samples, gain).astype(np.int32)
    assert np.all(np.abs(fast - as_int16(plain * np.float32(gain)).astype(np.int32)) <= 1)
