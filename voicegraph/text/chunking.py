"""Text → ordered chunks an engine can speak in one call.

Pure functions: normalise, split sentences, pack. The invariant the tests hold us to: for any text whose
words fit the limit, `" ".join(chunk_text(text, n)) == clean_text(text)`;
nothing is lost, duplicated or reordered, and no chunk is longer than `n`.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from voicegraph.core.errors import EmptyTextError, InvalidTextError, TextTooLongError
from voicegraph.text.spelling import spell_out

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


def _pack(pieces: list[str], max_chars: int) -> list[str]:
    """Greedily join space-separated pieces into runs of at most max_chars."""
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current} {piece}" if current else piece
        if len(candidate) <= max_chars:
            current = candidate
        else:
            if current:
                chunks.append(current)
            current = piece
    if current:
        chunks.append(current)
    return chunks


def _split_words(text: str, max_chars: int) -> list[str]:
    words: list[str] = []
    for word in text.split(" "):
        # A single "word" longer than a chunk (a pasted hash or URL) is the one
        # case where we must cut inside it; anything else would break the limit.
        words.extend(word[i : i + max_chars] for i in range(0, len(word), max_chars))
    return _pack(words, max_chars)


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
    return _pack(pieces, max_chars)


def chunk_text(
    text: str, max_chars: int, language: str = "en", first_chunk_chars: int | None = None
) -> list[str]:
    """Normalised text → chunks of at most max_chars, in order; the first at
    most `first_chunk_chars` (a short first chunk is a short wait for the
    first audio), cut at a sentence end, else a clause end, else between words."""
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    pieces: list[str] = []
    for sentence in split_sentences(clean_text(text), language):
        pieces.extend(split_long_sentence(sentence, max_chars))
    if not first_chunk_chars or first_chunk_chars >= max_chars or not pieces:
        return _pack(pieces, max_chars)
    pieces[:1] = split_long_sentence(pieces[0], first_chunk_chars)
    first = pieces.pop(0)
    while pieces and len(first) + 1 + len(pieces[0]) <= first_chunk_chars:
        first = f"{first} {pieces.pop(0)}"
    return [first, *_pack(pieces, max_chars)]


def split_head(text: str, head_chars: int, language: str = "en") -> tuple[str, str]:
    """A normalised text as (head, tail), `head + " " + tail == text`, the
    head ending at the last sentence end within `head_chars` (else the first
    one, else the last space): the head is chunked on its own, first, so
    time to first audio does not grow with the text. ("text", "") when it is short."""
    if len(text) <= head_chars:
        return text, ""
    window = text[: 2 * head_chars]
    # The last span may be a sentence the window cuts: only earlier ends are sure.
    ends = [end for _, end in _punkt(language).span_tokenize(window)][:-1]
    ends = [end for end in ends if end < len(text) and text[end] == " "]
    within = [end for end in ends if end <= head_chars]
    cut = within[-1] if within else ends[0] if ends else text.rfind(" ", 0, head_chars + 1)
    if cut <= 0:
        return text, ""
    return text[:cut], text[cut + 1 :]


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


def speakable_chunks(
    text: str, max_chars: int, language: str, normalize: bool, first_chunk_chars: int | None = None
) -> list[str]:
    # Normalised first, so "Dr. Smith" or "$3.50" is never split at its period.
    if normalize:
        text = spell_out(text, language)
    return chunk_text(text, max_chars, language, first_chunk_chars)
