import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicegraph.core.errors import EmptyTextError, InvalidTextError, TextTooLongError
from voicegraph.text.chunking import (
    check_text,
    chunk_text,
    clean_text,
    split_head,
    split_long_sentence,
    split_sentences,
)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Hello   world", "Hello world"),
        ("  leading and trailing \n", "leading and trailing"),
        ("line one\nline two\r\n\tline three", "line one line two line three"),
        ("bell\x07 and null\x00 removed", "bell and null removed"),
        ("del\x7f and c1\x85 chars", "del and c1 chars"),
        ("cafe\u0301", "caf\u00e9"),  # NFC composes the accent
        ("non\u00a0breaking", "non breaking"),
        ("Keep: punctuation, CASE & symbols $5 50%!", "Keep: punctuation, CASE & symbols $5 50%!"),
        ("\x00\x01\x02", ""),
    ],
)
def test_normalize_text(raw, expected):
    assert clean_text(raw) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            'Dr. Smith arrived at 5 p.m. on Jan. 3. He said "Hello!" Then he left... Mr. Jones stayed.',
            ["Dr. Smith arrived at 5 p.m. on Jan. 3.", 'He said "Hello!"', "Then he left...", "Mr. Jones stayed."],
        ),
        ("One. Two? Three!", ["One.", "Two?", "Three!"]),
        ("No final punctuation", ["No final punctuation"]),
        ("It costs $3.50 e.g. today. Fine.", ["It costs $3.50 e.g. today.", "Fine."]),
        ("", []),
    ],
)
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


@pytest.mark.parametrize(
    "sentence, limit, expected",
    [
        ("short", 10, ["short"]),
        ("alpha beta, gamma delta; epsilon", 16, ["alpha beta,", "gamma delta;", "epsilon"]),
        ("one two three four five six", 10, ["one two", "three four", "five six"]),
        ("abcdefghijkl xy", 5, ["abcde", "fghij", "kl xy"]),  # only an over-long word is cut
    ],
)
def test_split_long_sentence(sentence, limit, expected):
    assert split_long_sentence(sentence, limit) == expected


def test_chunks_pack_whole_sentences_up_to_the_limit():
    text = "First sentence here. Second one. Third sentence is longer than the others."
    assert chunk_text(text, 45) == [
        "First sentence here. Second one.",
        "Third sentence is longer than the others.",
    ]


def test_xtts_sized_chunks_of_a_long_text():
    text = " ".join(f"Sentence number {i} talks about item {i}, at length." for i in range(200))
    chunks = chunk_text(text, 250)
    assert all(len(chunk) <= 250 for chunk in chunks)
    assert " ".join(chunks) == clean_text(text)
    assert len(chunks) > len(text) // 250


def test_check_text():
    assert check_text("  hi\n", 10) == "hi"
    with pytest.raises(EmptyTextError):
        check_text(" \n\t\x00 ", 10)
    with pytest.raises(TextTooLongError, match="limit is 10"):
        check_text("x" * 11, 10)


words = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=12,
)
separators = st.sampled_from([" ", "  ", "\n", ". ", "! ", "? ", ", ", "; ", "... ", "\t", " - "])
texts = st.lists(st.tuples(words, separators), max_size=80).map(
    lambda pairs: "".join(word + sep for word, sep in pairs)
)


@settings(max_examples=300, deadline=None)
@given(texts, st.integers(min_value=20, max_value=300))
def test_chunks_keep_every_word_in_order(text, limit):
    normalized = clean_text(text)
    chunks = chunk_text(text, limit)
    assert all(0 < len(chunk) <= limit for chunk in chunks)
    if all(len(word) <= limit for word in normalized.split(" ")):
        assert " ".join(chunks) == normalized
        assert " ".join(chunks).split() == normalized.split()
    # Even where a giant word had to be cut, no character is lost or moved.
    assert "".join(chunks).replace(" ", "") == normalized.replace(" ", "")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=400), st.integers(min_value=1, max_value=60))
def test_chunking_any_unicode_never_raises_and_respects_the_limit(text, limit):
    chunks = chunk_text(text, limit)
    assert all(0 < len(chunk) <= limit for chunk in chunks)
    assert "".join(chunks).replace(" ", "") == clean_text(text).replace(" ", "")


@pytest.mark.parametrize(
    ("text", "position"),
    [("\udcff", 0), ("Hello \ud83d world", 6), ("ok \udfff", 3)],
)
def test_text_with_a_lone_surrogate_is_refused_with_where(text, position):
    with pytest.raises(InvalidTextError, match=f"at character {position}"):
        check_text(text, 1000)


def test_text_with_real_astral_characters_passes():
    assert check_text("Music \U0001f3b5 here.", 1000) == "Music \U0001f3b5 here."


LONG = "The first sentence is short. " + "Then comes a much longer sentence, with clauses, that goes on and on. " * 12


@pytest.mark.parametrize(
    "text, max_chars, first, expected_first",
    [
        # Whole sentences while they fit the first chunk's limit.
        ("One. Two. Three. Four.", 400, 10, "One. Two."),
        (LONG, 400, 90, "The first sentence is short."),
        # A first sentence longer than the limit: cut at a clause end...
        ("Well, this opening sentence runs on for quite a while. Next.", 400, 30, "Well,"),
        # ...else between words.
        ("This opening sentence has no clause punctuation at all in it. Next.", 400, 30, "This opening sentence has no"),
        # No limit, or one no smaller than the chunk's: as before.
        ("One. Two. Three. Four.", 400, None, "One. Two. Three. Four."),
        ("One. Two. Three. Four.", 10, 10, "One. Two."),
    ],
)
def test_the_first_chunk_is_short(text, max_chars, first, expected_first):
    chunks = chunk_text(text, max_chars, first_chunk_chars=first)
    assert chunks[0] == expected_first
    assert " ".join(chunks) == clean_text(text)
    assert all(len(chunk) <= max_chars for chunk in chunks[1:])


@settings(max_examples=300, deadline=None)
@given(texts, st.integers(min_value=40, max_value=300), st.integers(min_value=20, max_value=300))
def test_a_short_first_chunk_keeps_every_word_in_order(text, limit, first):
    normalized = clean_text(text)
    chunks = chunk_text(text, limit, first_chunk_chars=first)
    assert all(0 < len(chunk) <= limit for chunk in chunks)
    assert not chunks or len(chunks[0]) <= min(first, limit) or len(chunks[0].split(" ")) == 1
    if all(len(word) <= min(first, limit) for word in normalized.split(" ")):
        assert " ".join(chunks) == normalized
    assert "".join(chunks).replace(" ", "") == normalized.replace(" ", "")


@pytest.mark.parametrize(
    "text, head_chars, expected_head",
    [
        ("Short text. Two sentences.", 400, "Short text. Two sentences."),
        # The last sentence end within the limit...
        ("One two. Three four. Five six seven eight nine ten.", 21, "One two. Three four."),
        # ...else the first sentence end in the window...
        ("One two three four five. Six.", 15, "One two three four five."),
        # ...else the last space within the limit.
        ("One two three four five six seven eight nine ten eleven", 20, "One two three four"),
        # Abbreviations are not sentence ends.
        ("Dr. Smith met Mr. Jones. They talked for a while.", 30, "Dr. Smith met Mr. Jones."),
    ],
)
def test_split_head(text, head_chars, expected_head):
    head, tail = split_head(text, head_chars)
    assert head == expected_head
    assert (f"{head} {tail}" if tail else head) == text


@settings(max_examples=300, deadline=None)
@given(texts, st.integers(min_value=1, max_value=300))
def test_split_head_loses_nothing(text, head_chars):
    text = clean_text(text)
    head, tail = split_head(text, head_chars)
    assert (f"{head} {tail}" if tail else head) == text
    assert head or not text
