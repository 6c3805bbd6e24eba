from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicegraph.text.captions import Caption, render, to_json, to_srt, to_webvtt
from voicegraph.text.chunking import TextRun, clean_text, speakable_chunks
from voicegraph.text.spelling import Spoken, normalize_with_spans, spell_out
from voicegraph.text.words import (
    WordTime,
    captions_from_json,
    estimate_word_times,
    fit_to,
    original_words,
    trim_silence,
    word_captions,
)


def spans(words):
    return [(w.word, pytest.approx(w.start_s), pytest.approx(w.end_s)) for w in words]


def assert_well_timed(words, start_s, end_s):
    """Ordered, non-overlapping, inside [start_s, end_s]."""
    for word in words:
        assert start_s <= word.start_s <= word.end_s <= end_s
    for before, after in pairwise(words):
        assert before.end_s <= after.start_s


@pytest.mark.parametrize(
    "text, start_s, end_s, expected",
    [
        # "Hi" weighs 2 + 2, "there." 5 + 2: 4/11 and 7/11 of 1.1 s.
        ("Hi there.", 0.0, 1.1, [("Hi", 0.0, 0.4), ("there.", 0.4, 1.1)]),
        ("Go!", 2.0, 2.5, [("Go!", 2.0, 2.5)]),
        ("  a   b  ", 1.0, 2.0, [("a", 1.0, 1.5), ("b", 1.5, 2.0)]),  # spaces are no words
        ("", 0.0, 1.0, []),
        ("Now then", 3.0, 3.0, [("Now", 3.0, 3.0), ("then", 3.0, 3.0)]),  # no time, no length
    ],
)
def test_estimate_word_times(text, start_s, end_s, expected):
    assert spans(estimate_word_times(text, start_s, end_s)) == expected


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(),
    start_s=st.floats(min_value=0, max_value=1e5, allow_nan=False),
    duration_s=st.floats(min_value=0, max_value=1e4, allow_nan=False),
)
def test_estimates_are_ordered_touching_and_end_on_time(text, start_s, duration_s):
    end_s = start_s + duration_s
    words = estimate_word_times(text, start_s, end_s)
    assert [w.word for w in words] == text.split()
    assert_well_timed(words, start_s, end_s)
    for before, after in pairwise(words):
        assert before.end_s == after.start_s  # no gaps either: the span is spread, not sampled
    if words:
        assert words[0].start_s == start_s
        assert words[-1].end_s == end_s


@pytest.mark.parametrize(
    "words, expected",
    [
        ([WordTime("in", 1.2, 1.5)], [("in", 1.2, 1.5)]),  # inside: as measured
        ([WordTime("early", 0.5, 1.5), WordTime("late", 1.9, 2.3)], [("early", 1.0, 1.5), ("late", 1.9, 2.0)]),
        ([WordTime("past", 2.1, 2.2)], [("past", 2.0, 2.0)]),
    ],
)
def test_fit_to_clamps_into_the_span(words, expected):
    assert spans(fit_to(words, 1.0, 2.0)) == expected


def test_trim_silence_ends_each_word_at_its_last_sound():
    rate = 100
    pcm = np.zeros(100, dtype=np.float32)
    pcm[10:30] = 0.5  # "one" sounds for 0.1-0.3 s of its 0.1-0.5 s, then a pause
    pcm[50:90] = -0.5
    pcm[60] = 0.0  # a quiet sample inside a word is no end
    words = [WordTime("one", 0.1, 0.5), WordTime("two", 0.5, 1.0), WordTime("—", 1.0, 1.0)]
    assert spans(trim_silence(words, pcm, rate, quiet=0.01)) == [("one", 0.1, 0.3), ("two", 0.5, 0.9), ("—", 1.0, 1.0)]
    assert spans(trim_silence([WordTime("hush", 0.35, 0.45)], pcm, rate, 0.01)) == [("hush", 0.35, 0.35)]


def test_a_click_in_a_pause_is_no_sound():
    rate = 1000  # 10-sample frames
    pcm = np.zeros(1000, dtype=np.float32)
    pcm[100:300] = 0.5
    pcm[600] = 0.01  # 2% of the loudest sample, but its frame's RMS is 0.6% of the loudest frame's
    assert spans(trim_silence([WordTime("one", 0.1, 0.9)], pcm, rate, quiet=0.01)) == [("one", 0.1, 0.3)]


@pytest.mark.parametrize(
    "text, spoken",
    [
        ("Plain words stay put.", "Plain words stay put."),
        ("At 7:45 a.m. today", "At seven forty-five a m today"),
        ("It's 3:30pm.", "It's three thirty p m."),
        ("On 11/12/2026, we met.", "On November twelfth, twenty twenty-six, we met."),
    ],
)
def test_normalize_with_spans_says_what_spell_out_says(text, spoken):
    said = normalize_with_spans(text, "en")
    assert said.written == text
    assert said.text == spoken == spell_out(text, "en")
    assert len(said.sources) == len(said.text)


def test_spans_point_at_the_written_words():
    said = normalize_with_spans("Meet at 7:45 a.m. sharp", "en")
    assert said.text == "Meet at seven forty-five a m sharp"

    def written(spoken_word):
        start = said.text.index(spoken_word)
        first, last = said.source(start, start + len(spoken_word))
        return said.written[first:last]

    assert written("Meet") == "Meet"
    assert written("forty-five") == "7:45"
    assert written("seven forty-five") == "7:45"
    assert written("a m") == "a.m."
    assert written("sharp") == "sharp"


# Spoken word i said from i to i + 0.5 s: easy to read back.
def spoken_times(text):
    return [WordTime(word, float(i), i + 0.5) for i, word in enumerate(text.split())]


@pytest.mark.parametrize(
    "text, expected",
    [
        # (written word, first spoken word, last spoken word) it is timed by
        ("Plain words.", [("Plain", 0, 0), ("words.", 1, 1)]),
        ("At 7:45 a.m. today", [("At", 0, 0), ("7:45", 1, 2), ("a.m.", 3, 4), ("today", 5, 5)]),
        ("At 3pm", [("At", 0, 0), ("3pm", 1, 3)]),  # "three p m", all from one written word
        ("Pay $3.50 now", [("Pay", 0, 0), ("$3.50", 1, 5), ("now", 6, 6)]),
        ("Call 555-123-4567.", [("Call", 0, 0), ("555-123-4567.", 1, 10)]),
        ("Call (555) 123-4567.", [("Call", 0, 0), ("(555)", 1, 3), ("123-4567.", 4, 10)]),
        ("Run 5 km.", [("Run", 0, 0), ("5", 1, 1), ("km.", 2, 2)]),
        ("Up 10 %", [("Up", 0, 0), ("10", 1, 1), ("%", 2, 2)]),
        ("On Nov. 21, 2026 we", [("On", 0, 0), ("Nov.", 1, 1), ("21,", 2, 2), ("2026", 3, 4), ("we", 5, 5)]),
        ("Add 1 3/4 cups", [("Add", 0, 0), ("1", 1, 2), ("3/4", 3, 4), ("cups", 5, 5)]),
        ("See No. 5", [("See", 0, 0), ("No.", 1, 1), ("5", 2, 2)]),
        ("Ask Dr. Who", [("Ask", 0, 0), ("Dr.", 1, 1), ("Who", 2, 2)]),
        ("Fish & chips", [("Fish", 0, 0), ("&", 1, 1), ("chips", 2, 2)]),
    ],
)
def test_original_words_take_the_times_of_what_says_them(text, expected):
    said = normalize_with_spans(text, "en")
    spoken = spoken_times(said.text)
    timed = original_words(said, spoken)
    assert [(w.word, w.start_s, w.end_s) for w in timed] == [
        (word, spoken[first].start_s, spoken[last].end_s) for word, first, last in expected
    ]


def test_words_said_together_share_their_span():
    # "five million dollars": "dollars" is the "$", after "million", so the two
    # written words are one run, split by weight ("$5" 1 + 2, "million" 7 + 2).
    said = normalize_with_spans("Only $5 million", "en")
    assert said.text == "Only five million dollars"
    timed = original_words(said, spoken_times(said.text))
    assert spans(timed) == [("Only", 0.0, 0.5), ("$5", 1.0, 1.0 + 2.5 * 3 / 12), ("million", 1.0 + 2.5 * 3 / 12, 3.5)]


def test_a_written_word_not_said_is_an_instant():
    # The date rule drops "the" and reorders the rest: "November twenty-first".
    said = normalize_with_spans("On the 21st of November", "en")
    assert said.text == "On November twenty-first"
    timed = original_words(said, spoken_times(said.text))
    assert [w.word for w in timed] == ["On", "the", "21st", "of", "November"]
    assert (timed[1].start_s, timed[1].end_s) == (0.5, 0.5)
    assert timed[2].start_s == 1.0 and timed[-1].end_s == 2.5
    assert_well_timed(timed, 0.0, 2.5)


def test_original_words_needs_a_time_for_each_spoken_word():
    said = normalize_with_spans("At 7:45", "en")
    with pytest.raises(ValueError, match="3 words"):
        original_words(said, spoken_times("At seven"))
    assert original_words(Spoken.of(""), []) == []


written_words = st.one_of(
    st.text(alphabet="abcXYZ", min_size=1, max_size=6),
    st.integers(0, 10**9).map(str),
    st.sampled_from(
        ["7:45", "a.m.", "3pm", "$3.50", "$5", "million", "5", "km", "10%", "%", "(555)", "123-4567", "555-123-4567",
         "11/12/2026", "Nov.", "21st", "of", "the", "November", "2026", "1", "3/4", "No.", "Dr.", "St.", "&", "e.g.",
         "example.com", "a@b.co", "—", "1990s", "5-7", "#5", "+1", "-5", "°C", "2.5bn", "1st"]
    ),
)
written_texts = st.lists(
    st.tuples(written_words, st.sampled_from([" ", ", ", ". ", "  ", "; "])), min_size=1, max_size=12
).map(lambda pairs: "".join(word + gap for word, gap in pairs).strip())


@settings(max_examples=300, deadline=None)
@given(text=written_texts, language=st.sampled_from(["en", "en-gb", "de", "xx"]), end_s=st.floats(0.1, 100))
def test_every_written_word_gets_an_ordered_time_inside_the_sentence(text, language, end_s):
    said = normalize_with_spans(text, language)
    assert said.text == spell_out(text, language)
    timed = original_words(said, estimate_word_times(said.text, 0.0, end_s))
    assert [w.word for w in timed] == text.split()
    assert_well_timed(timed, 0.0, end_s)
    assert timed[-1].end_s == end_s


@settings(max_examples=200, deadline=None)
@given(text=st.text(), language=st.sampled_from(["en", "de", "xx"]))
def test_any_text_maps_back(text, language):
    said = normalize_with_spans(text, language)
    timed = original_words(said, estimate_word_times(said.text, 0.0, 1.0))
    assert [w.word for w in timed] == text.split()
    assert_well_timed(timed, 0.0, 1.0)


WORDS = (WordTime("Hi", 0.0, 0.4004), WordTime("there.", 0.45, 1.1))


def test_json_captions_carry_their_words():
    captions = [Caption(0.0, 1.2, "Hi there.", WORDS), Caption(1.5, 2.0, "Go!")]
    assert to_json(captions) == [
        {
            "start": 0.0,
            "end": 1.2,
            "text": "Hi there.",
            "words": [{"word": "Hi", "start": 0.0, "end": 0.4}, {"word": "there.", "start": 0.45, "end": 1.1}],
        },
        {"start": 1.5, "end": 2.0, "text": "Go!"},  # no words known: no "words"
    ]
    assert render(captions, "json")[0] == to_json(captions)


def test_text_captions_ignore_words():
    with_words, without = [Caption(0.0, 1.2, "Hi there.", WORDS)], [Caption(0.0, 1.2, "Hi there.")]
    assert to_webvtt(with_words) == to_webvtt(without)
    assert to_srt(with_words) == to_srt(without)


def _timed(text: str, start: float, end: float) -> list[WordTime]:
    return estimate_word_times(text, start, end)


def test_word_captions_show_the_text_as_written_timed_by_what_says_it():
    chunks = speakable_chunks(TextRun(unsplit="Wake at 7:45 a.m. today. Then eat."), 400, "en-us", True, None, True)
    (chunk,) = chunks
    # An engine's times for "Wake at seven forty-five a m today. Then eat.", from the chunk's start.
    spoken = _timed(chunk.text, 0.1, 2.9)
    (first, second) = word_captions([chunk.spoken], [spoken], [3.0], 0.2)
    assert (first.text, second.text) == ("Wake at 7:45 a.m. today.", "Then eat.")
    assert [w.word for w in first.words] == ["Wake", "at", "7:45", "a.m.", "today."]
    said = {w.word: w for w in spoken}
    assert first.words[2].start_s == said["seven"].start_s and first.words[2].end_s == said["forty-five"].end_s
    # A sentence runs from the chunk's start, or its first word, to the next one's first word.
    assert (first.start_s, first.end_s, second.start_s, second.end_s) == (0.0, said["Then"].start_s, said["Then"].start_s, 3.0)


def test_word_times_that_do_not_match_the_words_are_estimated():
    (chunk,) = speakable_chunks(TextRun(unsplit="One two three."), 400, "en-us", False, None, True)
    (caption,) = word_captions([chunk.spoken], [_timed("One two", 0.0, 1.0)], [1.5], 0.2)
    assert [w.word for w in caption.words] == ["One", "two", "three."] and caption.words[-1].end_s == 1.5


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet="abc $7:.,5", min_size=1, max_size=60), min_size=1, max_size=4), st.floats(0.1, 20))
def test_word_captions_of_any_chunks_are_ordered_and_hold_their_words(texts, seconds):
    parts, words, durations = [], [], []
    for text in texts:
        cleaned = clean_text(text)
        if not cleaned:
            continue
        for chunk in speakable_chunks(TextRun(unsplit=cleaned), 400, "en-us", True, None, True):
            parts.append(chunk.spoken)
            words.append(_timed(chunk.text, 0.0, seconds))
            durations.append(seconds)
    captions = word_captions(parts, words, durations, 0.18)
    assert all(a.end_s <= b.start_s for a, b in zip(captions, captions[1:]))
    for caption in captions:
        assert caption.start_s <= caption.end_s
        assert all(caption.start_s <= w.start_s <= w.end_s <= caption.end_s for w in caption.words)
        assert all(a.end_s <= b.start_s + 1e-9 for a, b in zip(caption.words, caption.words[1:]))
    if captions:
        assert captions[-1].end_s == pytest.approx(len(durations) * seconds + (len(durations) - 1) * 0.18)


def test_json_captions_read_back_as_they_were():
    captions = [Caption(0.0, 1.2344, "Hi 5.", (WordTime("Hi", 0.0, 0.4), WordTime("5.", 0.4, 1.2344)))]
    again = captions_from_json(to_json(captions))
    assert to_json(again) == to_json(captions) and again[0].words[1] == WordTime("5.", 0.4, 1.234)
