"""Chunks encoded one by one and joined, against the whole file encoded in one pass."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.audio import ffmpeg_decode
from voicegraph.audio.stitching import (
    Framing,
    Stitcher,
    group_chunks,
    join_chunks,
    plan_leads,
)
from voicegraph.core.settings import Settings


def speechlike(rng: np.random.Generator, seconds: float, rate: int) -> np.ndarray:
    """Band-limited noise under a syllable-rate envelope: no period, so a
    cross-correlation finds one lag only."""
    n = int(seconds * rate)
    noise = np.convolve(rng.standard_normal(n), np.hanning(9), "same")
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * np.arange(n) / rate)
    return (0.3 * envelope * noise / np.max(np.abs(noise))).astype(np.float32)


def both_ways(stitcher: Stitcher, parts: list[np.ndarray], rate: int, fmt: str):
    """(one-pass file, joined file), each decoded at `rate`."""
    one_pass = stitcher.stitch(parts, rate, fmt)
    plan = stitcher.plan(parts, rate, fmt)
    assert plan is not None
    segments = [stitcher.encode_segment(run, i, plan) for i, run in enumerate(plan.segments(parts))]
    joined = stitcher.join_segments(plan, segments)
    assert joined.duration_s == one_pass.duration_s
    assert joined.chunk_durations_s == one_pass.chunk_durations_s
    return ffmpeg_decode(one_pass.data, rate, seekable=True), ffmpeg_decode(joined.data, rate, seekable=True)


def best_lag(a: np.ndarray, b: np.ndarray, at: int, span: int, search: int) -> int:
    window = a[at : at + span]
    scores = [float(np.dot(window, b[at + lag : at + lag + span])) for lag in range(-search, search + 1)]
    return int(np.argmax(scores)) - search


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))




@pytest.mark.parametrize("fmt", ["mp3"])
@pytest.mark.parametrize("rate", [22050, 24000, 16000, 44100])
# A segment per chunk, or runs of chunks of at least 2.5 s.
@pytest.mark.parametrize("segment_s", [0.01, 2.5])
def test_joined_segments_decode_like_the_one_pass_file(fmt, rate, segment_s):
    rng = np.random.default_rng(rate)
    parts = [speechlike(rng, rng.uniform(0.4, 1.6), rate) for _ in range(9)]
    stitcher = Stitcher(Settings(mp3_segment_s=segment_s))
    one_pass, joined = both_ways(stitcher, parts, rate, fmt)
    # The same duration, to the sample (the issue asked for one frame per
    # join): the joined file's Info frame tells decoders its delay and padding,
    # as the one-pass file's does.
    assert len(joined) == len(one_pass) == len(join_chunks(parts, rate, Settings().pause_ms, 0))

    # Every chunk where the one-pass file has it, and the same samples around
    # every join, within the codec's own error.
    reference = join_chunks(parts, rate, Settings().pause_ms, Settings().fade_ms)
    reference *= stitcher.plan(parts, rate, fmt).gain
    pause = int(rate * Settings().pause_ms / 1000)
    start = 0
    error_ratios = []
    for index, part in enumerate(parts):
        assert best_lag(one_pass, joined, start + 2048, 4096, 1500) == 0, index
        if index:
            join = np.arange(start - pause // 2, start + pause // 2)
            codec_error = rms(one_pass[join] - reference[join])
            error_ratios.append(rms(joined[join] - reference[join]) / codec_error)
            # No click: the middle of the pause stays silent.
            middle = np.arange(start - 3 * pause // 4, start - pause // 4)
            assert np.max(np.abs(joined[middle])) < 0.01, index
        start += len(part) + pause
    # LAME starts a segment without its bit reservoir: the first frames after
    # a join can be up to ~2.6x noisier than the one-pass file's (measured);
    # on average the joins are as faithful as the rest.
    assert max(error_ratios) <= 3.0 and np.mean(error_ratios) <= 1.5, error_ratios


@pytest.mark.parametrize("rate", [22050, 44100])
def test_mpg123_also_decodes_the_joined_file_to_exactly_its_audio(rate):
    # libsndfile decodes MP3 with mpg123, which reads the Info frame's
    # delay and padding as players do: a second decoder beside ffmpeg.
    import io

    import soundfile

    rng = np.random.default_rng(rate + 1)
    parts = [speechlike(rng, rng.uniform(0.4, 1.6), rate) for _ in range(6)]
    stitcher = Stitcher(Settings(mp3_segment_s=2.0))
    plan = stitcher.plan(parts, rate, "mp3")
    joined = stitcher.join_segments(plan, [stitcher.encode_segment(r, i, plan) for i, r in enumerate(plan.segments(parts))])
    pcm, decoded_rate = soundfile.read(io.BytesIO(joined.data), dtype="float32")
    assert decoded_rate == rate
    assert len(pcm) == len(join_chunks(parts, rate, Settings().pause_ms, 0)) == round(joined.duration_s * rate)


def test_lufs_is_applied_to_the_whole_file_before_the_segments_are_encoded():
    import pyloudnorm

    rate = 22050
    rng = np.random.default_rng(7)
    # One quiet chunk among loud ones: a per-chunk normalisation would lift it.
    parts = [speechlike(rng, 1.5, rate) * (0.1 if i == 2 else 1.0) for i in range(5)]
    stitcher = Stitcher(Settings(loudness="lufs", target_lufs=-20.0, mp3_segment_s=0.01))
    one_pass, joined = both_ways(stitcher, parts, rate, "mp3")
    meter = pyloudnorm.Meter(rate)
    assert meter.integrated_loudness(joined.astype(np.float64)) == pytest.approx(
        meter.integrated_loudness(one_pass.astype(np.float64)), abs=0.2
    )
    assert meter.integrated_loudness(joined.astype(np.float64)) == pytest.approx(-20.0, abs=0.5)
    third = slice(int(3 * (1.5 * rate + 0.18 * rate)) - int(0.5 * rate), int(3 * (1.5 * rate + 0.18 * rate)))
    assert rms(joined[third]) < 0.3 * rms(joined[: int(1.5 * rate)])  # still the quiet one


@pytest.mark.parametrize(
    "fmt, parts, settings, why",
    [
        ("wav", 3, {}, "PCM needs no encoder"),
        ("opus", 3, {}, "Ogg pages do not join by concatenation"),
        ("aac", 3, {}, "ffmpeg's AAC encoder starts a segment badly"),
        ("flac", 3, {}, "FLAC frames are numbered from the stream's start"),
        ("mp3", 1, {}, "one chunk: nothing to share out"),
        ("mp3", 3, {"mp3_segment_s": 1.0}, "less audio than one segment's worth"),
        ("mp3", 3, {"pause_ms": 40}, "40 ms cannot hold LAME's delay and padding"),
    ],
)
def test_where_only_the_one_pass_encode_works(fmt, parts, settings, why):
    stitcher = Stitcher(Settings(**{"mp3_segment_s": 0.01, **settings}))
    assert stitcher.plan([np.zeros(5000, np.float32)] * parts, 22050, fmt) is None, why


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=50_000), min_size=1, max_size=40),
    st.integers(min_value=0, max_value=6000),
    st.sampled_from([Framing(1105, 576, 47), Framing(1105, 1152, 47), Framing(1024, 1024)]),  # AAC's, for the arithmetic
)
def test_planned_segments_put_every_chunk_in_its_place(lengths, pause, framing):
    leads = plan_leads(lengths, pause, framing)
    if leads is None:
        assert pause < framing.delay + framing.frame + framing.min_padding
        return
    assert leads[0] == 0 and all(lead >= 0 for lead in leads)
    written = 0
    start = 0
    for lead, length in zip(leads, lengths):
        # Decoded, chunk k begins `delay` samples into its segment, after its lead.
        assert written + framing.delay + lead == start + framing.delay
        written += framing.decoded_length(lead + length)
        start += length + pause


@pytest.mark.parametrize(
    "lengths, min_samples, sizes",
    [
        ([10, 10, 10, 10], 20, (2, 2)),
        ([10, 10, 10, 10, 10], 20, (2, 2, 1)),  # the last may be short
        ([30, 5, 5, 30], 20, (1, 3)),
        ([30, 5, 5, 30], 1, (1, 1, 1, 1)),
        ([5, 5], 100, (2,)),
    ],
)
def test_group_chunks(lengths, min_samples, sizes):
    assert group_chunks(lengths, min_samples) == sizes
