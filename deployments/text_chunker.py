"""The TextChunker deployment: text → ordered chunks an engine can speak in one call."""

from __future__ import annotations

from ray import serve

from voicegraph.text.chunking import chunk_text, speakable_chunks


@serve.deployment(name="TextChunker")
class TextChunker:
    def __init__(self):
        # Loading Punkt takes a second or more: pay it before the first request.
        chunk_text("Warm up. Ready.", 100)

    def chunk(
        self, text: str, max_chars: int, language: str, normalize: bool = False, first_chunk_chars: int | None = None
    ) -> list[str]:
        return speakable_chunks(text, max_chars, language, normalize, first_chunk_chars)
