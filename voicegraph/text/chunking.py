"""Text → ordered chunks an engine can speak in one call.

Pure functions: clean, split sentences, pack. The invariant the tests hold us to: for any text whose
words fit the limit, `" ".join(c.text for c in chunk_text(text, n)) == clean_text(text)`;
nothing is lost, duplicated or reordered, and no chunk is longer than `n`.

A request's sentences are split once (Punkt is the costly step): the ingress
splits its head's window, the chunker the rest, and each chunk carries its
sentences on, to the captions.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, groupby
from operator import itemgetter

from voicegraph.core.errors import EmptyTextError, InvalidTextError, TextTooLongError
from voicegraph.text.spelling import Spoken, normalize_with_spans

_WHITESPACE = re.compile(r"\s+")
# A clause ends at , ; : or a dash/closing bracket, followed by a space.
_CLAUSE_END = re.compile(r"(?<=[,;:\u2014\u2013)\]])\s")

# Used only where NLTK's trained punkt data is not installed (it cannot be
# downloaded here): an untrained Punkt tokenizer that knows common abbreviations.
_ABBREVIATIONS = {
    "dr", "mr", "mrs", "ms", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e",
    "a.m", "p.m", "u.s", "u.k", "no", "fig", "inc", "ltd", "co", "corp", "mt",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
}
# Punkt matches starters against whole tokens, so abbreviations keep their period.
_SENTENCE_STARTERS = {
    "he", "she", "it", "they", "we", "i", "you", "the", "this", "then", "but", "and",
    "mr.", "mrs.", "ms.", "dr.", "prof.",
}

# Language code prefix → NLTK punkt model name.
_PUNKT_LANGUAGES = {
    "cs": "czech", "da": "danish", "nl": "dutch", "en": "english", "et": "estonian",
    "fi": "finnish", "fr": "french", "de": "german", "el": "greek", "it": "italian",
    "ml": "malayalam", "nb": "norwegian", "no": "norwegian", "pl": "polish",
    "pt": "portuguese", "ru": "russian", "sl": "slovene", "es": "spanish",
    "sv": "swedish", "tr": "turkish",
}


def clean_text(text: str) -> str:
    """NFC, control characters removed, whitespace runs collapsed; nothing else."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(
        ch for ch in text if ch.isspace() or unicodedata.category(ch) != "Cc"
    )
    return _WHITESPACE.sub(" ", text).strip()


@functools.lru_cache(maxsize=32)
def _punkt(language: str):
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    name = _PUNKT_LANGUAGES.get(language.split("-")[0].lower())
    if name:
        try:
            from nltk.tokenize import PunktTokenizer

            return PunktTokenizer(name)
        except (LookupError, OSError, ImportError):
            pass
    params = PunktParameters()
    params.abbrev_types = set(_ABBREVIATIONS)
    params.sent_starters = set(_SENTENCE_STARTERS)
    return PunktSentenceTokenizer(params)


def split_sentences(text: str, language: str = "en") -> list[str]:
    """Sentences of an already normalised text, by Punkt spans (lossless)."""
    if not text:
        return []
    sentences: list[str] = []
    previous_end = None
    for start, end in _punkt(language).span_tokenize(text):
        if start == previous_end:
            # Punkt can split "?!" into two spans with no space between: one sentence.
            sentences[-1] += text[start:end]
        else:
            sentences.append(text[start:end])
        previous_end = end
    return sentences


@dataclass(frozen=True)
class Chunk:
    """What an engine speaks in one call, as the sentences (or parts of a long
    one) it is made of: captions time those, so they need no second split."""

    sentences: tuple[str, ...]
    # Where asked for (word captions): for each sentence, what the user wrote
    # that it says, character by character; else empty.
    spoken: tuple[Spoken, ...] = ()

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


@dataclass(frozen=True)
class TextRun:
    """A run of a request's text for the chunker: `sentences` the ingress
    split already (finding the head), then `unsplit`, the text after them."""

    sentences: tuple[str, ...] = ()
    unsplit: str = ""


def _pack(pieces: Sequence[str], max_chars: int) -> list[range]:
    """Greedily group consecutive pieces into runs whose space-joined length is
    at most max_chars (a longer piece alone); the runs as index ranges."""
    runs: list[range] = []
    start = length = 0
    for index, piece in enumerate(pieces):
        if index > start and length + 1 + len(piece) > max_chars:
            runs.append(range(start, index))
            start = index
        length = len(piece) if index == start else length + 1 + len(piece)
    if pieces:
        runs.append(range(start, len(pieces)))
    return runs


def _pack_text(pieces: list[str], max_chars: int) -> list[str]:
    return [" ".join(pieces[index] for index in run) for run in _pack(pieces, max_chars)]


def _split_words(text: str, max_chars: int) -> list[str]:
    words: list[str] = []
    for word in text.split(" "):
        # A single "word" longer than a chunk (a pasted hash or URL) is the one
        # case where we must cut inside it; anything else would break the limit.
        words.extend(word[i : i + max_chars] for i in range(0, len(word), max_chars))
    return _pack_text(words, max_chars)


def split_long_sentence(sentence: str, max_chars: int) -> list[str]:
    """Split at clause punctuation, then at word boundaries."""
    if len(sentence) <= max_chars:
        return [sentence]
    pieces: list[str] = []
    for clause in _CLAUSE_END.split(sentence):
        if len(clause) <= max_chars:
            pieces.append(clause)
        else:
            pieces.extend(_split_words(clause, max_chars))
    return _pack_text(pieces, max_chars)


# (which sentence, text): a whole sentence, or a part of a long one.
_Piece = tuple[int, str]


def _chunk(pieces: list[_Piece]) -> Chunk:
    # Parts of one sentence in one chunk are one sentence again.
    return Chunk(tuple(" ".join(text for _, text in parts) for _, parts in groupby(pieces, key=itemgetter(0))))


def _chunks(pieces: list[_Piece], max_chars: int) -> list[Chunk]:
    runs = _pack([text for _, text in pieces], max_chars)
    return [_chunk([pieces[index] for index in run]) for run in runs]


def pack_chunks(sentences: Sequence[str], max_chars: int, first_chunk_chars: int | None = None) -> list[Chunk]:
    """Sentences → chunks of at most max_chars, in order; the first at most
    `first_chunk_chars` (a short first chunk is a short wait for the first
    audio), cut at a sentence end, else a clause end, else between words."""
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    pieces = [(n, piece) for n, sentence in enumerate(sentences) for piece in split_long_sentence(sentence, max_chars)]
    if not first_chunk_chars or first_chunk_chars >= max_chars or not pieces:
        return _chunks(pieces, max_chars)
    n, opening = pieces[0]
    pieces[:1] = [(n, part) for part in split_long_sentence(opening, first_chunk_chars)]
    first, *_ = _pack([text for _, text in pieces], first_chunk_chars)
    return [_chunk(pieces[: len(first)]), *_chunks(pieces[len(first) :], max_chars)]


def chunk_text(
    text: str, max_chars: int, language: str = "en", first_chunk_chars: int | None = None
) -> list[Chunk]:
    """Any text → chunks (`pack_chunks`) of its cleaned sentences."""
    return pack_chunks(split_sentences(clean_text(text), language), max_chars, first_chunk_chars)


def split_head(text: str, head_chars: int, language: str = "en") -> tuple[TextRun, TextRun | None]:
    """A cleaned text as the run to chunk first, its head, and the rest (None:
    the head is all): the head is chunked on its own, so time to first audio
    does not grow with the text. Sentences are split in a window of the text;
    the head ends at the last sentence end within `head_chars` (else the
    first one, else the last space), and the window's other whole sentences
    travel with the rest, so none is split twice. A short text is all head,
    left for the chunker to split."""
    if len(text) <= head_chars:
        return TextRun(unsplit=text), None
    window = text[: 2 * head_chars]
    sentences = split_sentences(window, language)
    if len(window) < len(text):
        sentences.pop()  # perhaps one the window cuts: only earlier ends are sure
    # Sentences of a cleaned text are one space apart.
    ends = [end - 1 for end in accumulate(len(sentence) + 1 for sentence in sentences)]
    cuttable = [n for n, end in enumerate(ends, start=1) if end < len(text)]
    within = [n for n in cuttable if ends[n - 1] <= head_chars]
    count = within[-1] if within else cuttable[0] if cuttable else 0
    if count:
        rest = TextRun(tuple(sentences[count:]), text[ends[-1] + 1 :])
        return TextRun(tuple(sentences[:count])), rest
    cut = text.rfind(" ", 0, head_chars + 1)
    if cut <= 0:
        return TextRun(unsplit=text), None
    # No sentence ends in the window: the head is part of its first sentence.
    return TextRun((text[:cut],)), TextRun(unsplit=text[cut + 1 :])


def check_unicode(value: str, field: str) -> str:
    """`value`, or a 4xx when it holds a lone surrogate: JSON's "\\udcff" escapes
    parse into one, and no encoder, engine or storage can take it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidTextError(
            f"{field} is not valid Unicode: a lone surrogate ({value[exc.start]!r}) at character "
            f"{exc.start}; send text as UTF-8, or escape characters outside the BMP as a surrogate pair"
        ) from None
    return value


def check_text(text: str, max_text_chars: int) -> str:
    """The normalised text, or a 4xx error a person can act on."""
    check_unicode(text, "text")
    normalized = clean_text(text)
    if not normalized:
        raise EmptyTextError("text is empty: send at least one word to speak")
    if len(normalized) > max_text_chars:
        raise TextTooLongError(
            f"text is {len(normalized)} characters after normalisation; the limit is "
            f"{max_text_chars}. Split it into several requests."
        )
    return normalized


def clean_spoken(spoken: Spoken) -> Spoken:
    """`clean_text` of a normaliser's output, keeping where each character came
    from. Its input is cleaned already, so only spaces the rules put in need it."""
    text, sources = [], []
    for char, source in zip(spoken.text, spoken.sources):
        if char.isspace():
            if not text or text[-1] == " ":
                continue
            char = " "
        text.append(char)
        sources.append(source)
    if text and text[-1] == " ":
        text.pop()
        sources.pop()
    return Spoken(spoken.written, "".join(text), tuple(sources))


def _parts(spoken: Spoken, ranges: list[tuple[int, int]]) -> list[Spoken]:
    """A sentence's parts (ranges of spoken.text, in order, together all of
    it), each with the written text it says: the written sentence is cut
    where each part's first source starts, so nothing written is lost
    between parts (the "th," of "5th," that no spoken word claims)."""
    starts = [spoken.source(a, b) for a, b in ranges]
    cuts = [0] + [span[0] if span else len(spoken.written) for span in starts[1:]] + [len(spoken.written)]
    for i in range(len(cuts) - 2, -1, -1):
        cuts[i] = min(cuts[i], cuts[i + 1])  # monotonic, even where a rule reorders
    parts = []
    for (a, b), first, last in zip(ranges, cuts, cuts[1:]):
        sources = tuple(
            None if s is None else (min(max(s[0] - first, 0), last - first), min(max(s[1] - first, 0), last - first))
            for s in spoken.sources[a:b]
        )
        parts.append(Spoken(spoken.written[first:last].strip(), spoken.text[a:b], sources))
    return parts


def _with_sources(chunks: list[Chunk], sentences: list[Spoken]) -> list[Chunk]:
    """Chunks whose every sentence (or part of one) knows what it says.
    Parts are cut at spaces of their sentence, in order; a part that is not
    a piece of it (a word longer than a chunk, cut and joined) says itself."""
    index = offset = 0
    placed: list[tuple[int, int, int] | None] = []  # (sentence, start, end) of each part, in order
    for part in (part for chunk in chunks for part in chunk.sentences):
        whole = sentences[index].text if index < len(sentences) else ""
        if whole[offset : offset + len(part)] == part:
            placed.append((index, offset, offset + len(part)))
            offset += len(part) + 1
        else:
            placed.append(None)
            offset = whole.find(" ", offset + len(part)) + 1 or len(whole) + 1
        if offset >= len(whole):
            index, offset = index + 1, 0
    ranges: dict[int, list[tuple[int, int]]] = {}
    for where in placed:
        if where is not None:
            ranges.setdefault(where[0], []).append(where[1:])
    said = {n: iter(_parts(sentences[n], spans)) for n, spans in ranges.items()}
    parts = iter(placed)
    return [
        Chunk(
            chunk.sentences,
            tuple(
                Spoken.of(part) if (where := next(parts)) is None else next(said[where[0]])
                for part in chunk.sentences
            ),
        )
        for chunk in chunks
    ]


def speakable_chunks(
    run: TextRun,
    max_chars: int,
    language: str,
    normalize: bool,
    first_chunk_chars: int | None = None,
    with_sources: bool = False,
) -> list[Chunk]:
    """A run of a request's cleaned text → its chunks, split into sentences
    where the ingress did not, and with `normalize` spelt out (`spell_out`);
    `with_sources`: each sentence with what it says of the text as written."""
    written = [*run.sentences, *split_sentences(run.unsplit, language)]
    # After the split, sentence by sentence: the one split is the text as
    # written, where Punkt knows "Dr." and never cuts "$3.50" (no space).
    said = [clean_spoken(normalize_with_spans(s, language)) if normalize else Spoken.of(s) for s in written]
    said = [sentence for sentence in said if sentence.text]
    chunks = pack_chunks([sentence.text for sentence in said], max_chars, first_chunk_chars)
    return _with_sources(chunks, said) if with_sources else chunks
