from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicegraph.audio.stitching import join_chunks
from voicegraph.core.errors import UnsupportedFormatError
from voicegraph.text.captions import (
    Caption,
    caption_chunks,
    format_timestamp,
    render,
    speech_weight,
    to_json,
    to_srt,
    to_webvtt,
)
from voicegraph.text.chunking import chunk_text, split_sentences

RATE = 22050


@pytest.mark.parametrize(
    "seconds, vtt, srt",
    [
        (0, "00:00:00.000", "00:00:00,000"),
        (0.0004, "00:00:00.000", "00:00:00,000"),
        (0.0005, "00:00:00.001", "00:00:00,001"),  # half rounds up
        (1.234, "00:00:01.234", "00:00:01,234"),
        (59.9995, "00:01:00.000", "00:01:00,000"),  # the carry reaches the minutes
        (3600, "01:00:00.000", "01:00:00,000"),
        (3661.5, "01:01:01.500", "01:01:01,500"),
        (36000, "10:00:00.000", "10:00:00,000"),
    ],
)
def test_format_timestamp(seconds, vtt, srt):
    assert format_timestamp(seconds) == vtt
    assert format_timestamp(seconds, ",") == srt


@pytest.mark.parametrize(
    "sentence, weight",
    [
        ("Go!", 2 + 2),
        ("Hi there.", 7 + 2 * 2),
        ("It's 1999, again...", 12 + 3 * 2),  # punctuation is silent
        ("Café über.", 8 + 2 * 2),
    ],
)
def test_speech_weight(sentence, weight):
    assert speech_weight(sentence) == weight


# "Hi there." weighs 7 + 2*2 = 11 and "Goodbye." 7 + 1*2 = 9, so the first
# sentence gets 11/20 of the 1.2 s chunk: 0.66 s. The second chunk starts after
# the first chunk and one 0.25 s pause: 1.45 s.
EXAMPLE = caption_chunks([["Hi there.", "Goodbye."], ["Go!"]], [1.2, 0.5], pause_s=0.25)


def test_example_captions():
    assert [c.text for c in EXAMPLE] == ["Hi there.", "Goodbye.", "Go!"]
    assert [c.start_s for c in EXAMPLE] == pytest.approx([0.0, 0.66, 1.45])
    assert [c.end_s for c in EXAMPLE] == pytest.approx([0.66, 1.2, 1.95])


def test_webvtt_document():
    assert to_webvtt(EXAMPLE) == (
        "WEBVTT\n"
        "\n"
        "00:00:00.000 --> 00:00:00.660\n"
        "Hi there.\n"
        "\n"
        "00:00:00.660 --> 00:00:01.200\n"
        "Goodbye.\n"
        "\n"
        "00:00:01.450 --> 00:00:01.950\n"
        "Go!\n"
        "\n"
    )


def test_srt_document():
    assert to_srt(EXAMPLE) == (
        "1\n"
        "00:00:00,000 --> 00:00:00,660\n"
        "Hi there.\n"
        "\n"
        "2\n"
        "00:00:00,660 --> 00:00:01,200\n"
        "Goodbye.\n"
        "\n"
        "3\n"
        "00:00:01,450 --> 00:00:01,950\n"
        "Go!\n"
        "\n"
    )


def test_json():
    assert to_json(EXAMPLE) == [
        {"start": 0.0, "end": 0.66, "text": "Hi there."},
        {"start": 0.66, "end": 1.2, "text": "Goodbye."},
        {"start": 1.45, "end": 1.95, "text": "Go!"},
    ]


def test_empty_documents():
    assert to_webvtt([]) == "WEBVTT\n\n"
    assert to_srt([]) == ""
    assert to_json([]) == []


@pytest.mark.parametrize(
    "text, vtt, srt",
    [
        ("A --> B", "A --&gt; B", "A --> B"),
        ("Fish & chips", "Fish &amp; chips", "Fish & chips"),
        ("1 < 2 > 0", "1 &lt; 2 > 0", "1 < 2 > 0"),
        ("<b>bold</b>", "&lt;b>bold&lt;/b>", "<b>bold</b>"),
        ("&lt; stays literal", "&amp;lt; stays literal", "&lt; stays literal"),
        ("one\ntwo\r\n\nthree", "one two  three", "one two  three"),
    ],
)
def test_escaping(text, vtt, srt):
    captions = [Caption(0.0, 1.0, text)]
    assert to_webvtt(captions) == f"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n{vtt}\n\n"
    assert to_srt(captions) == f"1\n00:00:00,000 --> 00:00:01,000\n{srt}\n\n"


@pytest.mark.parametrize(
    "fmt, content_type, body",
    [
        ("json", "application/json", to_json(EXAMPLE)),
        ("vtt", "text/vtt", to_webvtt(EXAMPLE)),
        ("srt", "application/x-subrip", to_srt(EXAMPLE)),
    ],
)
def test_render(fmt, content_type, body):
    assert render(EXAMPLE, fmt) == (body, content_type)


def test_render_rejects_unknown_format():
    with pytest.raises(UnsupportedFormatError, match="json, vtt, srt"):
        render(EXAMPLE, "ass")


def test_rejects_mismatched_or_negative_timings():
    with pytest.raises(ValueError):
        caption_chunks([["One."], ["Two."]], [1.0], pause_s=0.1)
    with pytest.raises(ValueError):
        caption_chunks([["One."]], [1.0], pause_s=-0.1)
    with pytest.raises(ValueError):
        caption_chunks([["One."]], [-1.0], pause_s=0.1)


def test_rounding_never_prints_a_cue_ending_after_the_next_starts():
    # 1/3 s chunks put boundaries on repeating decimals; each instant is
    # rounded once, so touching cues print touching times.
    captions = caption_chunks([["A b.", "C d e.", "F."]] * 3, [1 / 3] * 3, pause_s=1 / 7)
    printed = to_json(captions)
    assert len(printed) >= 3  # a cue or more for each chunk: the loop below checks something
    for before, after in pairwise(printed):
        assert before["start"] <= before["end"] <= after["start"]


def _samples(seconds: float) -> int:
    return int(RATE * seconds)


def tone(samples: int, hz: float) -> np.ndarray:
    t = np.arange(samples) / RATE
    return (0.5 * np.sin(2 * np.pi * hz * t) + 0.1).astype(np.float32)


def test_captions_line_up_with_joined_audio():
    chunks = chunk_text(
        "The quick brown fox jumps. It lands! Then, after a long and winding pause "
        "that goes on, and on, and on past any chunk limit, it sleeps. Done?",
        max_chars=40,
    )
    parts = [tone(_samples(0.2 + 0.1 * i), 200 + 50 * i) for i in range(len(chunks))]
    pause_ms, fade_ms = 123.4, 5
    joined = join_chunks(parts, RATE, pause_ms=pause_ms, fade_ms=fade_ms)
    pause_s = int(RATE * pause_ms / 1000) / RATE  # join_chunks pauses whole samples
    captions = caption_chunks([chunk.sentences for chunk in chunks], [len(p) / RATE for p in parts], pause_s)

    assert [c.text for c in captions] == [
        "The quick brown fox jumps.", "It lands!", "Then,", "after a long and winding pause that goes",
        "on, and on, and on past any chunk limit,", "it sleeps.", "Done?",
    ]
    assert captions[0].start_s == 0
    assert captions[-1].end_s == pytest.approx(len(joined) / RATE, abs=1 / RATE)
    # Audio under every caption, silence in every gap between them.
    for caption in captions:
        middle = round((caption.start_s + caption.end_s) / 2 * RATE)
        assert joined[middle] != 0
    for before, after in pairwise(captions):
        if after.start_s > before.end_s:
            gap = joined[round(before.end_s * RATE) : round(after.start_s * RATE)]
            assert len(gap) == int(RATE * pause_ms / 1000)
            assert not np.any(gap)


words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzÀéß0123456789'", min_size=1, max_size=10)
sentences = st.builds(
    lambda ws, end: " ".join(ws).capitalize() + end,
    st.lists(words, min_size=1, max_size=8),
    st.sampled_from([".", "!", "?", "...", ",", ";", ""]),  # "" and ",": long-sentence pieces
)
chunk_lists = st.lists(st.lists(sentences, min_size=1, max_size=3), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(
    chunk_lists,
    st.lists(st.integers(min_value=1, max_value=3 * RATE), min_size=30, max_size=30),
    st.floats(min_value=0, max_value=1500, allow_nan=False),
)
def test_captions_tile_the_joined_audio(chunks, lengths, pause_ms):
    lengths = lengths[: len(chunks)]
    joined = join_chunks(
        [np.zeros(n, dtype=np.float32) for n in lengths], RATE, pause_ms=pause_ms, fade_ms=10
    )
    pause_samples = int(RATE * pause_ms / 1000)
    captions = caption_chunks(chunks, [n / RATE for n in lengths], pause_samples / RATE)

    assert captions[-1].end_s == pytest.approx(len(joined) / RATE, abs=1 / RATE)
    assert all(c.text.strip() for c in captions)
    # Nothing lost or reordered.
    assert " ".join(c.text for c in captions) == " ".join(" ".join(chunk) for chunk in chunks)

    # Each chunk's captions cover exactly that chunk's place in the joined audio.
    offset = 0
    index = 0
    for chunk, n in zip(chunks, lengths):
        group = captions[index : index + len(chunk)]
        index += len(group)
        assert group[0].start_s == pytest.approx(offset / RATE, abs=1 / RATE)
        assert group[-1].end_s == pytest.approx((offset + n) / RATE, abs=1 / RATE)
        for before, after in pairwise(group):
            assert before.end_s == after.start_s  # no gap inside a chunk
        offset += n + pause_samples
    assert offset - pause_samples == len(joined)

    assert captions[0].start_s == 0
    for caption in captions:
        assert caption.start_s <= caption.end_s
    for before, after in pairwise(captions):
        gap = after.start_s - before.end_s
        assert gap >= 0
        assert gap == 0 or gap == pytest.approx(pause_samples / RATE)  # gaps only at pauses
    printed = to_json(captions)
    for before, after in pairwise(printed):
        assert before["start"] <= before["end"] <= after["start"]


@settings(max_examples=200, deadline=None)
@given(st.lists(sentences, min_size=1, max_size=40), st.integers(min_value=20, max_value=300))
def test_a_chunk_carries_the_sentences_a_second_split_would_find(sentence_list, limit):
    """Captions time the sentences the chunker found: the same ones, and so
    the same captions, as splitting each chunk again would give."""
    for chunk in chunk_text(" ".join(sentence_list), limit):
        assert list(chunk.sentences) == split_sentences(chunk.text)
