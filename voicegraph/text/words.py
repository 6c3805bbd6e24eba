"""Word timestamps: estimated, fitted into a span, and put back on the words as written.

Pure functions, no Ray. A text's words are `text.split()`'s. An engine that
knows when it says each word (eSpeak's word events, Piper's phoneme
alignments) times them itself; for the rest they are estimated the way
captions time sentences, by spoken weight. The engine speaks normalised text
("seven forty-five a m"); `original_words` puts its times back on the words
the user wrote ("7:45 a.m."), using the account `spelling.normalize_with_spans`
keeps of which written words each spoken word says.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from voicegraph.text.captions import Caption, speech_weight, spread
from voicegraph.text.spelling import Span, Spoken

_WORD = re.compile(r"\S+")
_FRAME_S = 0.01


@dataclass(frozen=True)
class WordTime:
    word: str
    start_s: float
    end_s: float


def estimate_word_times(text: str, start_s: float, end_s: float) -> list[WordTime]:
    """The words of `text` spread over [start_s, end_s] by spoken weight:
    ordered, touching, the last ending at end_s."""
    words = text.split()
    spans = spread([speech_weight(word) for word in words], start_s, end_s)
    return [WordTime(word, start, end) for word, (start, end) in zip(words, spans)]


def fit_to(words: Sequence[WordTime], start_s: float, end_s: float) -> list[WordTime]:
    """Words with every time clamped into [start_s, end_s]. Clamping is
    monotonic, so order and non-overlap survive; times already inside stay
    as measured. Engines' own times can pass the audio they made by their
    rounding (eSpeak counts milliseconds, Piper whole frames)."""

    def clamp(seconds: float) -> float:
        return min(max(seconds, start_s), end_s)

    return [WordTime(w.word, clamp(w.start_s), clamp(w.end_s)) for w in words]


def _frame_rms(samples: np.ndarray, frame: int) -> np.ndarray:
    """RMS of each `frame` samples, the last frame padded with silence."""
    frames = np.pad(samples.astype(np.float64), (0, -len(samples) % frame)).reshape(-1, frame)
    return np.sqrt(np.mean(frames**2, axis=1))


def trim_silence(words: Sequence[WordTime], pcm: np.ndarray, rate: int, quiet: float) -> list[WordTime]:
    """Words (seconds into `pcm`) each ending where its sound does, or where
    it starts if it has none: an engine's span for a word can run on into
    the pause after it, or over a decoder's fading tail. Sound is 10 ms
    frames with an RMS above `quiet` times the loudest frame's: frames, not
    samples, so that a lone click in a pause is no sound."""
    frame = max(1, round(rate * _FRAME_S))
    floor = quiet * _frame_rms(pcm, frame).max(initial=0.0)
    trimmed = []
    for word in words:
        start, end = round(word.start_s * rate), round(word.end_s * rate)
        # Frames counted back from the word's end, so none reaches into the next word.
        loud = np.flatnonzero(_frame_rms(pcm[start:end][::-1], frame) > floor)
        sound_end = end - int(loud[0]) * frame if len(loud) else start
        trimmed.append(WordTime(word.word, word.start_s, max(word.start_s, min(word.end_s, sound_end / rate))))
    return trimmed


def _written_range(starts: list[int], ends: list[int], span: Span | None) -> tuple[int, int] | None:
    """The first and last written word that `span` overlaps, or None."""
    if span is None:
        return None
    first, last = bisect_right(ends, span[0]), bisect_left(starts, span[1]) - 1
    return (first, last) if first <= last else None


def _groups(said: Spoken, written: list[re.Match[str]]) -> list[list[int]]:
    """[first spoken, last spoken, first written, last written] word indices
    (inclusive) of runs that say each other, in order. A spoken word whose
    written words overlap or come before the previous run's (a reading that
    reorders, "$5 million" → "five million dollars") joins that run; one
    that says no written word goes with the run before it (the first run,
    if none is before it)."""
    starts, ends = [m.start() for m in written], [m.end() for m in written]
    groups: list[list[int]] = []
    for index, word in enumerate(_WORD.finditer(said.text)):
        covered = _written_range(starts, ends, said.source(*word.span()))
        if covered is None:
            if groups:
                groups[-1][1] = index
            continue
        group = [index, index, *covered]
        while groups and group[2] <= groups[-1][3]:
            previous = groups.pop()
            group = [previous[0], index, min(previous[2], group[2]), max(previous[3], group[3])]
        groups.append(group)
    if not groups:
        return [[0, len(said.text.split()) - 1, 0, len(written) - 1]]
    groups[0][0] = 0
    return groups


def original_words(said: Spoken, spoken: Sequence[WordTime]) -> list[WordTime]:
    """The written words of `said.written`, timed by `spoken`: the times of
    `said.text`'s words, in order (from an engine, or `estimate_word_times`).

    A written word said as several words spans them ("7:45" over "seven
    forty-five"). Written words said together, in an order of their own
    ("$5 million"), share the span of what says them, by weight. A written
    word not said at all (the "the" of "the 21st of November") is an
    instant where it would have been. Ordered, non-overlapping, and within
    the spoken words' span.
    """
    written = list(_WORD.finditer(said.written))
    if len(spoken) != len(said.text.split()):
        raise ValueError(f"{len(spoken)} word times for the {len(said.text.split())} words of {said.text!r}")
    if not written:
        return []
    if not spoken:
        raise ValueError(f"no spoken words to time {said.written!r} by")
    timed: list[WordTime] = []
    next_written = 0
    for first, last, written_first, written_last in _groups(said, written):
        start, end = spoken[first].start_s, spoken[last].end_s
        # Written words said by no spoken word: at the end of what came before.
        at = timed[-1].end_s if timed else start
        timed.extend(WordTime(m[0], at, at) for m in written[next_written:written_first])
        text = " ".join(m[0] for m in written[written_first : written_last + 1])
        timed.extend(estimate_word_times(text, start, end))
        next_written = written_last + 1
    at = timed[-1].end_s
    timed.extend(WordTime(m[0], at, at) for m in written[next_written:])
    return timed


def word_captions(
    chunk_parts: Sequence[Sequence[Spoken]],
    chunk_words: Sequence[Sequence[WordTime]],
    chunk_durations_s: Sequence[float],
    pause_s: float,
) -> list[Caption]:
    """Sentence captions with their words, for chunks spoken in order with
    `pause_s` between them (as `captions.caption_chunks` times them), each
    chunk given as its sentences (what each says of the text as written)
    and its words' times from its own start.

    A sentence runs from its first word to the next sentence's first word
    (the chunk's start and end at its ends), so its words are inside it;
    its text and words are the user's, timed by what says them. A chunk
    whose times do not match its words (an engine that said a word as
    two) is estimated instead, as is a sentence the written words cannot
    be put back on (a word longer than a chunk, cut in two)."""
    captions: list[Caption] = []
    chunk_start = 0.0
    for parts, words, duration in zip(chunk_parts, chunk_words, chunk_durations_s, strict=True):
        chunk_end = chunk_start + duration
        counts = [len(part.text.split()) for part in parts]
        if sum(counts) != len(words):
            words = estimate_word_times(" ".join(part.text for part in parts), 0.0, duration)
        timed = [WordTime(w.word, chunk_start + w.start_s, chunk_start + w.end_s) for w in fit_to(words, 0.0, duration)]
        groups, at = [], 0
        for count in counts:
            groups.append(timed[at : at + count])
            at += count
        starts = [chunk_start]
        for group in groups[1:]:
            starts.append(max(starts[-1], group[0].start_s if group else starts[-1]))
        ends = [*starts[1:], chunk_end]
        for part, group, start, end in zip(parts, groups, starts, ends):
            try:
                written = original_words(part, group)
            except ValueError:
                written = group
            captions.append(Caption(start, end, part.written or part.text, tuple(fit_to(written, start, end))))
        chunk_start = chunk_end + pause_s
    return captions


def captions_from_json(captions: Sequence[dict]) -> list[Caption]:
    """`captions.to_json`'s captions back (to milliseconds, as it rounds them)."""
    return [
        Caption(
            c["start"], c["end"], c["text"],
            tuple(WordTime(w["word"], w["start"], w["end"]) for w in c.get("words", ())),
        )
        for c in captions
    ]
