import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicegraph.core.errors import EmptyTextError, InvalidTextError, TextTooLongError
from voicegraph.text.chunking import (
    TextRun,
    check_text,
    chunk_text,
    clean_text,
    speakable_chunks,
    split_head,
    split_long_sentence,
    split_sentences,
)


def chunk_texts(text: str, max_chars: int, first_chunk_chars: int | None = None) -> list[str]:
    return [chunk.text for chunk in chunk_text(text, max_chars, first_chunk_chars=first_chunk_chars)]


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
def test_clean_text(raw, expected):
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
    assert chunk_texts(text, 45) == [
        "First sentence here. Second one.",
        "Third sentence is longer than the others.",
    ]


def test_xtts_sized_chunks_of_a_long_text():
    text = " ".join(f"Sentence number {i} talks about item {i}, at length." for i in range(200))
    chunks = chunk_texts(text, 250)
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
    chunks = chunk_texts(text, limit)
    assert all(0 < len(chunk) <= limit for chunk in chunks)
    if all(len(word) <= limit for word in normalized.split(" ")):
        assert " ".join(chunks) == normalized
        assert " ".join(chunks).split() == normalized.split()
    # Even where a giant word had to be cut, no character is lost or moved.
    assert "".join(chunks).replace(" ", "") == normalized.replace(" ", "")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=400), st.integers(min_value=1, max_value=60))
def test_chunking_any_unicode_never_raises_and_respects_the_limit(text, limit):
    chunks = chunk_texts(text, limit)
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
    chunks = chunk_texts(text, max_chars, first_chunk_chars=first)
    assert chunks[0] == expected_first
    assert " ".join(chunks) == clean_text(text)
    assert all(len(chunk) <= max_chars for chunk in chunks[1:])


@settings(max_examples=300, deadline=None)
@given(texts, st.integers(min_value=40, max_value=300), st.integers(min_value=20, max_value=300))
def test_a_short_first_chunk_keeps_every_word_in_order(text, limit, first):
    normalized = clean_text(text)
    chunks = chunk_texts(text, limit, first_chunk_chars=first)
    assert all(0 < len(chunk) <= limit for chunk in chunks)
    assert not chunks or len(chunks[0]) <= min(first, limit) or len(chunks[0].split(" ")) == 1
    if all(len(word) <= min(first, limit) for word in normalized.split(" ")):
        assert " ".join(chunks) == normalized
    assert "".join(chunks).replace(" ", "") == normalized.replace(" ", "")


def run_text(run: TextRun | None) -> str:
    return " ".join(part for part in (*run.sentences, run.unsplit) if part) if run else ""


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
    head, rest = split_head(text, head_chars)
    assert run_text(head) == expected_head
    assert (f"{run_text(head)} {run_text(rest)}" if rest else run_text(head)) == text


def test_the_window_s_whole_sentences_after_the_head_travel_split():
    head, rest = split_head("One two. Three four. Five six. Seven eight nine ten eleven twelve.", 16)
    assert head == TextRun(("One two.",))
    assert rest == TextRun(("Three four.", "Five six."), "Seven eight nine ten eleven twelve.")
    # A short text is left whole for the chunker to split.
    assert split_head("One. Two.", 10) == (TextRun(unsplit="One. Two."), None)


@settings(max_examples=300, deadline=None)
@given(texts, st.integers(min_value=1, max_value=300))
def test_split_head_loses_nothing(text, head_chars):
    text = clean_text(text)
    head, rest = split_head(text, head_chars)
    assert (f"{run_text(head)} {run_text(rest)}" if rest else run_text(head)) == text
    assert run_text(head) or not text
    # Split or not, every run's sentences are the ones one split of the text finds.
    sentences = [*head.sentences, *split_sentences(head.unsplit)]
    if rest:
        sentences += [*rest.sentences, *split_sentences(rest.unsplit)]
    assert " ".join(sentences) == text


class PunktSpy:
    """Every text Punkt tokenizes, through the real tokenizer."""

    def __init__(self, monkeypatch):
        from voicegraph.text import chunking

        self.texts: list[str] = []
        real = chunking._punkt
        spy = self

        class Tokenizer:
            def __init__(self, language):
                self._real = real(language)

            def span_tokenize(self, text):
                spy.texts.append(text)
                return self._real.span_tokenize(text)

        monkeypatch.setattr(chunking, "_punkt", Tokenizer)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("repeats", [1, 40])
def test_a_request_s_sentences_are_split_once(monkeypatch, normalize, repeats):
    """The ingress's head split, the chunker's two calls and the captions: each
    part of the text goes through Punkt once (the window's last, perhaps cut,
    sentence is the only one split again)."""
    from voicegraph.text.captions import caption_chunks

    text = clean_text("It costs $3.50, said Dr. Smith. " + "Then a sentence follows it, one after another. " * repeats)
    spy = PunktSpy(monkeypatch)
    head, rest = split_head(text, 400)
    chunks = speakable_chunks(head, 400, "en", normalize, 50)
    chunks += speakable_chunks(rest, 400, "en", normalize) if rest else []
    captions = caption_chunks([chunk.sentences for chunk in chunks], [1.0] * len(chunks), 0.1)

    if repeats == 1:
        assert spy.texts == [text]  # short: the chunker's one split
    else:
        window = text[:800]
        assert spy.texts == [window, rest.unsplit]
        assert len(window) + len(rest.unsplit) < len(text) + 50  # no more than one sentence twice
    # The captions a second split of each chunk would give.
    assert [caption.text for caption in captions] == [
        sentence for chunk in chunks for sentence in split_sentences(chunk.text)
    ]


@pytest.mark.parametrize(
    "text, max_chars, expected",
    [
        # (spoken part, what it says of the text as written), chunk by chunk.
        (
            "We meet at 7:45 a.m. on Jan. 5th, 2027 for $5 million. Then we leave.",
            60,
            [
                [("We meet at seven forty-five a m on January fifth,", "We meet at 7:45 a.m. on Jan. 5th,")],
                [("twenty twenty-seven for five million dollars.", "2027 for $5 million."), ("Then we leave.", "Then we leave.")],
            ],
        ),
        ("Plain words only. And more.", 400, [[("Plain words only.", "Plain words only."), ("And more.", "And more.")]]),
    ],
)
def test_chunks_can_carry_what_each_sentence_says_as_written(text, max_chars, expected):
    chunks = speakable_chunks(TextRun(unsplit=text), max_chars, "en-us", True, None, with_sources=True)
    assert [[(spoken.text, spoken.written) for spoken in chunk.spoken] for chunk in chunks] == expected
    assert all(tuple(s.text for s in chunk.spoken) == chunk.sentences for chunk in chunks)
    # Without asking, chunks carry nothing more than before.
    assert all(not chunk.spoken for chunk in speakable_chunks(TextRun(unsplit=text), max_chars, "en-us", True))


@settings(max_examples=200, deadline=None)
@given(texts, st.integers(min_value=20, max_value=300))
def test_the_written_parts_of_any_text_are_all_of_it_in_order(text, limit):
    cleaned = clean_text(text)
    chunks = speakable_chunks(TextRun(unsplit=cleaned), limit, "en-us", True, None, with_sources=True)
    assert all(tuple(s.text for s in chunk.spoken) == chunk.sentences for chunk in chunks)
    if all(len(word) <= limit for word in cleaned.split()):
        # Parts are cut where what they say starts, which may be inside a written word ("000=").
        written = "".join(s.written for chunk in chunks for s in chunk.spoken)
        assert written.replace(" ", "") == cleaned.replace(" ", "")
