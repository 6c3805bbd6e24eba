"""A chunk sent in pieces is shaped as the whole chunk would be."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicegraph.audio.dsp import fade
from voicegraph.audio.streaming import ChunkInPieces, stream_piece

RATE = 1000  # 1 sample per ms: fades of a few samples


def sent_in_pieces(whole, cuts, fade_ms, peak_dbfs=0.0):
    shaped = ChunkInPieces(RATE, fade_ms, peak_dbfs)
    outs = [shaped.feed(piece) for piece in np.split(whole, sorted(cuts))]
    return outs, shaped.close()


@settings(max_examples=300, deadline=None)
@given(
    length=st.integers(0, 400),
    cuts=st.lists(st.integers(0, 400), max_size=8),
    fade_ms=st.sampled_from([0, 1, 5, 20]),
    seed=st.integers(0, 2**16),
)
def test_pieces_joined_are_the_whole_chunk_faded(length, cuts, fade_ms, seed):
    whole = (np.random.default_rng(seed).standard_normal(length) * 0.1).astype(np.float32)
    outs, end = sent_in_pieces(whole, [min(cut, length) for cut in cuts], fade_ms)
    joined = np.concatenate([*outs, end])
    np.testing.assert_allclose(joined, fade(whole, int(RATE * fade_ms / 1000)), atol=1e-6)
    # The same as a whole chunk as the first of a stream.
    np.testing.assert_allclose(joined, stream_piece(whole, 0, RATE, 180, fade_ms, 0.0), atol=1e-6)


@pytest.mark.parametrize(
    "pieces, fade_ms, sent_at_once",
    [
        ([100, 100, 100], 20, [80, 100, 100]),  # the last 20 samples wait for the end
        ([10, 10, 100], 20, [0, 0, 100]),  # nothing until a fade in and out fit
        ([30], 20, [0]),  # shorter than two fades: all at the end, faded as fade() does
        ([50, 50], 0, [50, 50]),  # no fade: nothing held back
    ],
)
def test_what_is_held_back(pieces, fade_ms, sent_at_once):
    whole = np.full(sum(pieces), 0.1, np.float32)
    outs, end = sent_in_pieces(whole, np.cumsum(pieces)[:-1], fade_ms)
    assert [len(out) for out in outs] == sent_at_once
    assert sum(sent_at_once) + len(end) == len(whole)


def test_a_loud_piece_is_turned_down_to_the_ceiling():
    whole = np.concatenate([np.full(100, 0.1), np.full(100, 0.9)]).astype(np.float32)
    outs, end = sent_in_pieces(whole, [100], fade_ms=0, peak_dbfs=-6.0)
    assert np.abs(outs[0]).max() == pytest.approx(0.1)  # under the ceiling: untouched
    assert np.abs(outs[1]).max() == pytest.approx(10 ** (-6 / 20), rel=1e-4)
