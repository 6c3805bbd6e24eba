"""Texts to speak, and the chunks the service makes of them."""


def long_text(characters: int, start: int = 0) -> str:
    """Sentences of varied length, so chunk durations differ and order shows.

    Another `start` (the first sentence's number) is another text: a test that
    needs real synthesis must not repeat one the response cache already holds.
    """
    sentences, i = [], start
    while sum(len(s) + 1 for s in sentences) < characters:
        sentences.append(" ".join(["word"] * (3 + i % 11)) + f" number {i}.")
        i += 1
    return " ".join(sentences)[:characters].rstrip(" ")


def service_chunks(text: str, max_chars: int, language: str = "en-us") -> list[str]:
    """The chunks the graph makes of `text` with the default settings: the
    text's head (its first chunk short) and the rest, each chunked on its own."""
    from voicegraph.core.settings import Settings
    from voicegraph.text.chunking import check_text, speakable_chunks, split_head

    first_chunk_chars = Settings().first_chunk_chars
    head, rest = split_head(check_text(text, len(text) + 1), max_chars, language)
    chunks = speakable_chunks(head, max_chars, language, True, first_chunk_chars)
    chunks += speakable_chunks(rest, max_chars, language, True) if rest else []
    return [chunk.text for chunk in chunks]
