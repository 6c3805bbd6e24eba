"""Word times from a Piper voice's own phoneme durations.

A VITS voice decides how many frames each phoneme id lasts (the `Ceil` of
its duration predictor) and then discards the numbers. piper-tts returns them,
as `AudioChunk.phoneme_alignments` from `synthesize(include_alignments=True)`,
when the model has that tensor as a second output. Published voices, the
bundled joe one included, do not, and piper's own patch
(`piper.patch_voice_with_alignment`, or `PiperVoice.load(include_alignments=
True)`) needs the `onnx` package, which we do not install: `expose_durations`
makes the same one-output change on the model's bytes instead, and a session
made from them speaks the same audio. A voice whose session lacks the output
still speaks; its words are then estimated, and the result says so.

The phonemes between spaces are eSpeak's words, not the text's: eSpeak joins
unstressed ones ("in the" is "ɪnðə") and splits others. So each text word is
phonemized alone and those phonemes are matched (difflib) against the ones
the voice said, which puts every text word on the phonemes that say it. A
word runs on over the pauses after it (word breaks, punctuation) until the
next word or the sentence's closing silence, and then ends at its last sound
(`trim_silence`): the decoder lets a word's end fade out into those pauses.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterator

import numpy as np

from voicegraph.engines.base import TimedAudio
from voicegraph.text.words import WordTime, estimate_word_times, fit_to, trim_silence

# Quieter than this share of the loudest 10 ms is no sound (-30 dB): VITS
# pauses are faint noise, not zeros, with the decoder's clicks in them
# (measured up to -38 dB), and a word's tail decays slowly through them.
_QUIET = 0.03

# ONNX's protobuf field numbers (onnx.proto): ModelProto.graph; GraphProto.node
# and .output; NodeProto.output and .op_type; ValueInfoProto.name.
_MODEL_GRAPH, _GRAPH_NODE, _GRAPH_OUTPUT = 7, 1, 12
_NODE_OUTPUT, _NODE_OP_TYPE, _VALUE_INFO_NAME = 2, 4, 1
_LENGTH_DELIMITED = 2


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def _fields(data: memoryview) -> Iterator[tuple[int, memoryview]]:
    """(number, bytes) of a protobuf message's length-delimited fields; the
    rest (numbers) skipped."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        wire_type = key & 7
        if wire_type == 0:
            _, position = _varint(data, position)
        elif wire_type in (1, 5):
            position += 8 if wire_type == 1 else 4
        elif wire_type == _LENGTH_DELIMITED:
            length, position = _varint(data, position)
            yield key >> 3, data[position : position + length]
            position += length
        else:
            raise ValueError(f"not an ONNX model: protobuf wire type {wire_type}")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | _LENGTH_DELIMITED) + _encode_varint(len(payload)) + payload


def _strings(message: memoryview, number: int) -> list[str]:
    return [bytes(value).decode() for field, value in _fields(message) if field == number]


def expose_durations(model: bytes) -> bytes:
    """The ONNX model with its phoneme durations (the one `Ceil` tensor, as
    piper's own patch finds it) as an extra output; unchanged where it has
    that output already or no single `Ceil` is found."""
    ceil_outputs, outputs = [], set()
    for field, graph in _fields(memoryview(model)):
        if field != _MODEL_GRAPH:
            continue
        for part, value in _fields(graph):
            if part == _GRAPH_NODE and _strings(value, _NODE_OP_TYPE) == ["Ceil"]:
                ceil_outputs += _strings(value, _NODE_OUTPUT)
            elif part == _GRAPH_OUTPUT:
                outputs.update(_strings(value, _VALUE_INFO_NAME))
    if len(ceil_outputs) != 1 or ceil_outputs[0] in outputs:
        return model
    # A message field that appears twice is merged, its repeated fields
    # concatenated: a second `graph` holding only the new output appends it.
    output = _field(_VALUE_INFO_NAME, ceil_outputs[0].encode())
    return model + _field(_MODEL_GRAPH, _field(_GRAPH_OUTPUT, output))


def _is_sound(phoneme: str) -> bool:
    """Whether a phoneme is part of a word: not the sentence's start or end,
    a word break or punctuation (a pause)."""
    from piper.const import BOS, EOS

    return phoneme not in (BOS, EOS, " ") and not all(unicodedata.category(c).startswith("P") for c in phoneme)


def _project(blocks: list[difflib.Match], position: int) -> float:
    """Where `position` in the phonemes expected falls in those heard: exact
    inside a matching run, pro rata in a stretch between two."""
    before_expected = before_heard = 0
    for expected, heard, size in blocks:
        if position <= expected + size:
            if position >= expected:
                return heard + position - expected
            return before_heard + (position - before_expected) * (heard - before_heard) / (expected - before_expected)
        before_expected, before_heard = expected + size, heard + size
    return before_heard  # not reached: the last block ends where both sequences do


def _sounds(alignments, sample: int) -> list[tuple[str, int, int]]:
    """The sounds of a sentence (its `phoneme_alignments`, its audio from
    `sample` on): each phoneme, its first sample and the sample where the
    next sound or the sentence's closing silence starts."""
    from piper.const import EOS

    phonemes, onsets = [], []
    for alignment in alignments:
        if alignment.phoneme == EOS or _is_sound(alignment.phoneme):
            onsets.append(sample)
            if alignment.phoneme != EOS:
                phonemes.append(alignment.phoneme)
        sample += int(alignment.num_samples)
    onsets.append(sample)
    return list(zip(phonemes, onsets, onsets[1:]))


def _word_times(voice, text: str, heard: list[tuple[str, int, int]], rate: int) -> list[WordTime]:
    """The words of `text` on the sounds `heard` (`_sounds`), in order."""
    words = text.split()
    alone = [[p for sentence in voice.phonemize(word) for p in sentence if _is_sound(p)] for word in words]
    matcher = difflib.SequenceMatcher(None, [p for ps in alone for p in ps], [p for p, _, _ in heard], autojunk=False)
    blocks = matcher.get_matching_blocks()
    starts = [0]
    for phonemes in alone:
        starts.append(starts[-1] + len(phonemes))
    # Word i says heard[bounds[i]:bounds[i + 1]]: sounds before the first
    # word's or after the last's are theirs.
    bounds = [0, *(round(_project(blocks, start)) for start in starts[1:-1]), len(heard)]
    times = []
    for word, first, end in zip(words, bounds, bounds[1:]):
        if first < end:
            start_sample, end_sample = heard[first][1], heard[end - 1][2]
        else:
            # Nothing of it heard ("—"): an instant, where the next sound starts.
            start_sample = end_sample = heard[first][1] if first < len(heard) else heard[-1][2] if heard else 0
        times.append(WordTime(word, start_sample / rate, end_sample / rate))
    return times


def synthesize_words(voice, text: str, config) -> TimedAudio:
    """`voice` (a `piper.PiperVoice`) speaking `text` with `config` (a
    `piper.SynthesisConfig`), and when it says each word of `text`; estimated
    (`words_estimated`) where the voice's session gives no phoneme durations
    (see `expose_durations`)."""
    pieces, heard = [], []
    aligned = True
    for chunk in voice.synthesize(text, config, include_alignments=True):
        aligned = aligned and chunk.phoneme_alignments is not None
        if aligned:
            heard += _sounds(chunk.phoneme_alignments, sum(len(piece) for piece in pieces))
        pieces.append(chunk.audio_float_array)
    pcm = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    seconds = len(pcm) / voice.config.sample_rate
    if not aligned:
        return TimedAudio(pcm, tuple(estimate_word_times(text, 0.0, seconds)), words_estimated=True)
    words = fit_to(_word_times(voice, text, heard, voice.config.sample_rate), 0.0, seconds)
    return TimedAudio(pcm, tuple(trim_silence(words, pcm, voice.config.sample_rate, _QUIET)), words_estimated=False)
