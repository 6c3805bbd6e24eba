"""The TextChunker deployment: a run of a request's text → ordered chunks an
engine can speak in one call (`voicegraph.text.chunking`, plain functions)."""

from __future__ import annotations

from ray import serve

from voicegraph.text import chunking


@serve.deployment(name="TextChunker")
class TextChunker:
    def __init__(self):
        # Loading Punkt takes a second or more: pay it before the first request.
        chunking.chunk_text("Warm up. Ready.", 100)

    def chunk(
        self,
        run: chunking.TextRun,
        max_chars: int,
        language: str,
        normalize: bool = False,
        first_chunk_chars: int | None = None,
        with_sources: bool = False,
    ) -> list[chunking.Chunk]:
        return chunking.speakable_chunks(run, max_chars, language, normalize, first_chunk_chars, with_sources)
