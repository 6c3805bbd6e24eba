"""PCM chunks → one encoded file: ordered joins, loudness, encoding.

Two ways to the same file. `stitch` joins every chunk and encodes the whole
in one pass. For a codec whose files are a plain run of frames (MP3), `plan`,
`encode_segment` and `join_segments` encode runs of chunks (segments) on their
own, in parallel across replicas, and concatenate the results: the cuts fall
in the silent pauses between chunks, and each segment's leading silence is
shortened by what its encoder adds, so every chunk lands where the one-pass
encode puts it.
"""

from __future__ import annotations

import io
import os
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from voicegraph.audio.dsp import (
    fade,
    faded_int16,
    faded_peak,
    loudness_gain,
    ms_to_samples,
    peak_gain,
    scaled,
    to_float32,
    to_int16,
)
from voicegraph.audio.formats import (
    AudioFormat,
    audio_format,
    content_type,
    ffmpeg_encode_command,
    wav_header,
)
from voicegraph.audio.mp3_info import DECODER_DELAY, fill_info_frame, frame_length
from voicegraph.core.errors import EncodingError
from voicegraph.core.settings import Settings

with warnings.catch_warnings():
    # pydub warns at import when no system ffmpeg is on PATH; we point it at
    # the ffmpeg shipped in the imageio-ffmpeg wheel instead.
    warnings.simplefilter("ignore", RuntimeWarning)
    from pydub import AudioSegment

import imageio_ffmpeg

AudioSegment.converter = imageio_ffmpeg.get_ffmpeg_exe()

T = TypeVar("T")


def join_chunks(
    parts: list[np.ndarray], sample_rate: int, pause_ms: float, fade_ms: float
) -> np.ndarray:
    """Chunks in order, each faded in and out, with `pause_ms` of silence between.

    The result's length is exactly the sum of the parts plus the pauses, so a
    chunk's place in the file can be computed from the chunk durations.
    """
    fade_samples = ms_to_samples(sample_rate, fade_ms)
    faded = [fade(to_float32(part), fade_samples) for part in parts]
    return _with_pauses(faded, ms_to_samples(sample_rate, pause_ms))


def _with_pauses(faded: list[np.ndarray], pause: int, dtype: np.dtype = np.float32) -> np.ndarray:
    out = np.zeros(joined_length([len(part) for part in faded], pause), dtype)
    position = 0
    for part in faded:
        out[position : position + len(part)] = part
        position += len(part) + pause
    return out


def encode(pcm: np.ndarray, sample_rate: int, fmt: AudioFormat, encoder_options: dict[str, list[str]]) -> bytes:
    """The whole of `pcm` in one pass through ffmpeg (to a seekable file, so
    MP3 gets its Xing/LAME header: exact length and gapless playback)."""
    segment = AudioSegment(data=to_int16(pcm), sample_width=2, frame_rate=sample_rate, channels=1)
    buffer = io.BytesIO()
    parameters = [*encoder_options.get(fmt.name, ()), *(["-ar", str(fmt.sample_rate)] if fmt.sample_rate else [])]
    try:
        segment.export(
            buffer,
            format=fmt.ffmpeg_format,
            codec=fmt.codec,
            parameters=parameters,
        )
    except Exception as exc:  # pydub raises CouldntEncodeError with ffmpeg's stderr
        raise EncodingError(f"encoding to {fmt.name} failed: {exc}") from exc
    return buffer.getvalue()


@dataclass(frozen=True)
class Framing:
    """How an encoder frames a segment of `n` samples: decoded, it is
    `delay` samples of priming, the `n` samples, then at least `min_padding`
    samples of padding, up to whole frames of `frame` samples."""

    delay: int
    frame: int
    min_padding: int = 0
    # Output options that keep a segment a bare run of frames (no header or
    # tag that would land mid-file once segments are joined).
    options: tuple[str, ...] = ()
    # Over `options`, for the first segment: the encoder's own Info frame in
    # front, which join_segments fills in for the whole file (mp3_info).
    first_options: tuple[str, ...] = ()

    def decoded_length(self, samples: int) -> int:
        return -(-(samples + self.delay + self.min_padding) // self.frame) * self.frame


def segment_framing(format_name: str, sample_rate: int) -> Framing | None:
    """The framing of a format whose segments join by concatenation, or None."""
    if format_name == "mp3":
        # LAME: 576 samples of encoder delay + 529 of decoder delay, and a
        # frame more when fewer than 47 samples would pad the last one; MPEG-2
        # (rates up to 24 kHz) frames hold 576 samples, MPEG-1 frames 1152.
        frame = 576 if sample_rate <= 24_000 else 1152
        return Framing(1105, frame, 47, ("-write_xing", "0", "-id3v2_version", "0"), ("-write_xing", "1"))
    # ADTS frames would join too, but ffmpeg's AAC encoder spends its first
    # frames badly: measured, a chunk's onset came out up to 12x noisier than
    # in the one-pass file. Opus (Ogg pages) and FLAC (numbered frames) do not
    # join by concatenation.
    return None


def group_chunks(lengths: list[int], min_samples: int) -> tuple[int, ...]:
    """How many consecutive chunks each segment holds: at least `min_samples`
    of audio per segment (the last may hold less), since every segment costs
    an encoder start-up."""
    sizes: list[int] = []
    count = samples = 0
    for length in lengths:
        count, samples = count + 1, samples + length
        if samples >= min_samples:
            sizes.append(count)
            count = samples = 0
    if count:
        sizes.append(count)
    return tuple(sizes)


def plan_leads(lengths: list[int], pause: int, framing: Framing) -> tuple[int, ...] | None:
    """Leading silence, in samples, of each segment (`lengths`: each one's
    audio, pauses inside included), so that the encoded segments concatenated
    put segment k where the one-pass encode does.

    Segment k's output starts where the previous segments' outputs end, and
    its audio starts `delay` samples later, after the encoder's priming: so
    its leading silence is the rest of the pause. None when a pause is too
    short to hold the priming and the frame padding.
    """
    leads = [0]
    written = 0  # output samples of the segments so far
    start = 0  # where the current segment starts in the one-pass file
    for length in lengths[:-1]:
        written += framing.decoded_length(leads[-1] + length)
        start += length + pause
        lead = start - written
        if lead < 0:
            return None
        leads.append(lead)
    return tuple(leads)


@dataclass(frozen=True)
class StitchedAudio:
    data: bytes
    format: str
    content_type: str
    sample_rate: int
    duration_s: float
    chunk_durations_s: tuple[float, ...]


@dataclass(frozen=True)
class SegmentPlan:
    """One request's chunks, encoded one segment each: what every segment needs."""

    format: str
    sample_rate: int
    gain: float  # the whole file's loudness gain, applied to every segment
    chunk_lengths: tuple[int, ...]
    segment_sizes: tuple[int, ...]  # chunks in each segment, in order
    leads: tuple[int, ...]  # silence before each segment's first chunk, in samples
    pause: int  # samples between two chunks

    def segments(self, parts: list[T]) -> list[list[T]]:
        """`parts` (one per chunk) cut into the segments' runs."""
        runs, start = [], 0
        for size in self.segment_sizes:
            runs.append(parts[start : start + size])
            start += size
        return runs

    def segment_samples(self) -> list[int]:
        """What each segment's encoder is given: its leading silence, its
        chunks and the pauses between them."""
        runs = self.segments(list(self.chunk_lengths))
        return [lead + joined_length(run, self.pause) for lead, run in zip(self.leads, runs)]


def joined_length(lengths: list[int] | tuple[int, ...], pause: int) -> int:
    """Samples of chunks of `lengths` joined with a pause between each two."""
    return sum(lengths) + max(0, len(lengths) - 1) * pause


class Stitcher:
    """Ray-free: join, normalise and encode with the service's settings."""

    def __init__(self, settings: Settings):
        self.pause_ms = settings.pause_ms
        self.fade_ms = settings.fade_ms
        self.loudness = settings.loudness
        self.peak_dbfs = settings.peak_dbfs
        self.target_lufs = settings.target_lufs
        self.encoder_options = settings.encoder_options()
        self.segment_s = settings.mp3_segment_s

    def stitch(self, parts: list[np.ndarray], sample_rate: int, format_name: str) -> StitchedAudio:
        """The whole file in one pass."""
        fmt = audio_format(format_name)
        gain = self._gain(parts, sample_rate)
        if fmt.ffmpeg_format is None:  # WAV, PCM: samples, scaled straight into int16
            fade_samples = ms_to_samples(sample_rate, self.fade_ms)
            faded = [faded_int16(part, fade_samples, gain) for part in parts]
            samples = _with_pauses(faded, ms_to_samples(sample_rate, self.pause_ms), np.dtype("<i2"))
            header = wav_header(sample_rate, samples.nbytes) if fmt.name == "wav" else b""
            data = b"".join((header, memoryview(samples).cast("B")))
        else:
            joined = join_chunks(parts, sample_rate, self.pause_ms, self.fade_ms)
            data = encode(scaled(joined, gain), sample_rate, fmt, self.encoder_options)
        return self._stitched(data, fmt, sample_rate, tuple(len(part) for part in parts))

    def plan(self, parts: list[np.ndarray], sample_rate: int, format_name: str) -> SegmentPlan | None:
        """How to encode `parts` segment by segment, or None where only
        `stitch` can: a format that does not join by frames, one chunk only
        (nothing to share out), or pauses too short to hide the joins in."""
        framing = segment_framing(audio_format(format_name).name, sample_rate)
        lengths = [len(part) for part in parts]
        sizes = group_chunks(lengths, int(self.segment_s * sample_rate))
        if framing is None or len(sizes) < 2:
            return None
        pause = ms_to_samples(sample_rate, self.pause_ms)
        segment_lengths, start = [], 0
        for size in sizes:
            segment_lengths.append(joined_length(lengths[start : start + size], pause))
            start += size
        leads = plan_leads(segment_lengths, pause, framing)
        if leads is None:
            return None
        gain = self._gain(parts, sample_rate)
        return SegmentPlan(format_name, sample_rate, gain, tuple(lengths), sizes, leads, pause)

    def _gain(self, parts: list[np.ndarray], sample_rate: int) -> float:
        """The whole file's loudness gain, from its parts."""
        if self.loudness == "peak":  # no need to join: the loudest part decides
            fade_samples = ms_to_samples(sample_rate, self.fade_ms)
            return peak_gain(max((faded_peak(p, fade_samples) for p in parts), default=0.0), self.peak_dbfs)
        if self.loudness == "off":
            return 1.0
        joined = join_chunks(parts, sample_rate, self.pause_ms, self.fade_ms)
        return loudness_gain(joined, sample_rate, self.loudness, self.peak_dbfs, self.target_lufs)

    def encode_segment(self, parts: list[np.ndarray], index: int, plan: SegmentPlan) -> bytes:
        """Segment `index` of the plan (its chunks' `parts`) as a bare run of
        frames: its leading silence, then the chunks faded, at the file's
        loudness, with the pauses between them."""
        fmt = audio_format(plan.format)
        framing = segment_framing(fmt.name, plan.sample_rate)
        fade_samples = ms_to_samples(plan.sample_rate, self.fade_ms)
        faded = [faded_int16(part, fade_samples, plan.gain) for part in parts]
        lead = np.zeros(plan.leads[index], np.dtype("<i2"))
        samples = np.concatenate([lead, _with_pauses(faded, plan.pause, lead.dtype)])
        options = framing.options + (framing.first_options if index == 0 else ())
        with tempfile.TemporaryDirectory() as folder:
            # A file, not a pipe: the encoder writes its Info frame only where
            # it can go back to it.
            output = os.path.join(folder, "segment")
            command = ffmpeg_encode_command(fmt, plan.sample_rate, self.encoder_options, *options, output=output)
            result = subprocess.run(command, input=memoryview(samples).cast("B"), capture_output=True)
            if result.returncode != 0:
                detail = result.stderr.decode(errors="replace").strip()
                raise EncodingError(f"encoding to {fmt.name} failed: {detail}")
            with open(output, "rb") as encoded:
                return encoded.read()

    def join_segments(self, plan: SegmentPlan, segments: list[bytes]) -> StitchedAudio:
        """The segments concatenated, behind the first one's Info frame made
        true of the whole file: decoders then drop the priming and the
        padding, and the file decodes to exactly its samples."""
        framing = segment_framing(plan.format, plan.sample_rate)
        info_bytes = frame_length(segments[0])
        audio = [segments[0][info_bytes:], *segments[1:]]
        frames = sum(framing.decoded_length(length) for length in plan.segment_samples()) // framing.frame
        file_bytes = info_bytes + sum(len(segment) for segment in audio)
        info = fill_info_frame(
            segments[0][:info_bytes], frames, file_bytes, joined_length(plan.chunk_lengths, plan.pause),
            framing.delay - DECODER_DELAY,
        )
        return self._stitched(b"".join([info, *audio]), audio_format(plan.format), plan.sample_rate, plan.chunk_lengths)

    def _stitched(
        self, data: bytes, fmt: AudioFormat, sample_rate: int, lengths: tuple[int, ...]
    ) -> StitchedAudio:
        samples = joined_length(lengths, ms_to_samples(sample_rate, self.pause_ms))
        return StitchedAudio(
            data=data,
            format=fmt.name,
            content_type=content_type(fmt, sample_rate),
            sample_rate=sample_rate,
            duration_s=samples / sample_rate,
            chunk_durations_s=tuple(n / sample_rate for n in lengths),
        )
