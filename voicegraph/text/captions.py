"""Sentence captions timed from the chunk audio actually produced.

Ray-free. Timing mirrors `stitcher.join_chunks`: chunk i starts after chunks
0..i-1 and one pause between each consecutive pair; no pause follows the last
chunk and fading changes no lengths. So the last caption ends exactly where the
joined audio ends, given the real chunk durations and the real pause.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, Literal

from voicegraph.core.errors import UnsupportedFormatError

if TYPE_CHECKING:
    # Only a type here: words.py builds on this module (speech_weight, spread).
    from voicegraph.text.words import WordTime

# Added per word to its letter count. Spoken length follows syllables more than
# spelling: "a" or "I" still takes a whole syllable, and a word boundary costs an
# onset. Punctuation and spaces are not spoken at all, so they weigh nothing.
_WORD_WEIGHT = 2.0

CaptionFormat = Literal["json", "vtt", "srt"]


@dataclass(frozen=True)
class Caption:
    start_s: float
    end_s: float
    text: str
    # When each word of the sentence is said, where known (`words.WordTime`).
    words: tuple[WordTime, ...] = ()


def speech_weight(sentence: str) -> float:
    """Relative time a sentence takes to say: letters and digits plus a per-word cost."""
    letters = sum(ch.isalnum() for ch in sentence)
    return letters + _WORD_WEIGHT * len(sentence.split())


def spread(weights: Sequence[float], start_s: float, end_s: float) -> list[tuple[float, float]]:
    """[start_s, end_s] cut into consecutive (start, end) spans, one per
    (positive) weight and as long as its share of the total."""
    if not weights:
        return []
    total = sum(weights)
    duration = end_s - start_s
    # Boundaries from cumulative weight, the last pinned to end_s, so float
    # error can neither push a span past end_s nor leave a gap between two.
    bounds = [min(start_s + duration * (w / total), end_s) for w in accumulate(weights[:-1])]
    return list(zip([start_s, *bounds], [*bounds, end_s]))


def _caption_chunk(sentences: Sequence[str], start_s: float, end_s: float) -> list[Caption]:
    spans = spread([speech_weight(s) for s in sentences], start_s, end_s)
    return [Caption(s, e, text) for (s, e), text in zip(spans, sentences)]


def caption_chunks(
    chunk_sentences: Sequence[Sequence[str]], chunk_durations_s: list[float], pause_s: float
) -> list[Caption]:
    """Captions for chunks spoken in order, each given as its sentences (a
    `chunking.Chunk`'s), `pause_s` of silence between them.

    Pass the pause join_chunks really inserted, which is a whole number of
    samples: `int(rate * pause_ms / 1000) / rate`, not `pause_ms / 1000`.
    """
    if pause_s < 0 or any(d < 0 for d in chunk_durations_s):
        raise ValueError("durations and pause must not be negative")
    captions: list[Caption] = []
    start = 0.0
    for sentences, duration in zip(chunk_sentences, chunk_durations_s, strict=True):
        end = start + duration
        captions.extend(_caption_chunk(sentences, start, end))
        start = end + pause_s
    return captions


def _milliseconds(seconds: float) -> int:
    # Every instant is rounded alone, half up, by this one monotonic function:
    # equal times print equal and ordered times stay ordered, so a cue's end
    # never prints after the next cue's start.
    return math.floor(seconds * 1000 + 0.5)


def format_timestamp(seconds: float, decimal_mark: str = ".") -> str:
    """HH:MM:SS.mmm (hours always present), the mark being "," for SRT."""
    hours, rest = divmod(_milliseconds(seconds), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_mark}{millis:03d}"


def _one_line(text: str) -> str:
    # A blank line ends a cue in both formats; chunk text is normalised already,
    # but a caption must never be able to end its own cue.
    return " ".join(text.splitlines())


def _escape_vtt(text: str) -> str:
    # WebVTT cue text reserves & and <, and "-->" would read as a timing line;
    # &gt; keeps the arrow visible exactly as written.
    return (
        _one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace("-->", "--&gt;")
    )


def to_webvtt(captions: list[Caption]) -> str:
    cues = (
        f"{format_timestamp(c.start_s)} --> {format_timestamp(c.end_s)}\n{_escape_vtt(c.text)}\n\n"
        for c in captions
    )
    return "WEBVTT\n\n" + "".join(cues)


def to_srt(captions: list[Caption]) -> str:
    return "".join(
        f"{index}\n{format_timestamp(c.start_s, ',')} --> {format_timestamp(c.end_s, ',')}\n"
        f"{_one_line(c.text)}\n\n"
        for index, c in enumerate(captions, start=1)
    )


def _seconds(seconds: float) -> float:
    # Same millisecond rounding as the text formats, so all three agree.
    return _milliseconds(seconds) / 1000


def _json_caption(c: Caption) -> dict[str, float | str | list]:
    caption: dict[str, float | str | list] = {"start": _seconds(c.start_s), "end": _seconds(c.end_s), "text": c.text}
    if c.words:
        caption["words"] = [{"word": w.word, "start": _seconds(w.start_s), "end": _seconds(w.end_s)} for w in c.words]
    return caption


def to_json(captions: list[Caption]) -> list[dict[str, float | str | list]]:
    return [_json_caption(c) for c in captions]


_RENDERERS: dict[str, tuple[Callable[[list[Caption]], str | list], str]] = {
    "json": (to_json, "application/json"),
    "vtt": (to_webvtt, "text/vtt"),
    "srt": (to_srt, "application/x-subrip"),
}


def render(captions: list[Caption], fmt: CaptionFormat) -> tuple[str | list, str]:
    """(body, content type) for a caption format."""
    try:
        renderer, content_type = _RENDERERS[fmt]
    except KeyError:
        raise UnsupportedFormatError(
            f"caption format {fmt!r} is not supported; use one of {', '.join(_RENDERERS)}"
        ) from None
    return renderer(captions), content_type
