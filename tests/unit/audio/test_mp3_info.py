"""The Info frame of a joined MP3, against the one ffmpeg writes for a one-pass file."""

import os
import struct
import subprocess
import tempfile

import imageio_ffmpeg
import numpy as np
import pytest

from voicegraph.audio.mp3_info import DECODER_DELAY, crc16, fill_info_frame, frame_length


def header(version: int, bitrate_index: int, rate_index: int, padding: int, mono: bool = True) -> bytes:
    """A Layer III frame header: version 3 is MPEG-1, 2 MPEG-2, 0 MPEG-2.5."""
    word = (0x7FF << 21) | (version << 19) | (1 << 17) | (1 << 16)
    word |= (bitrate_index << 12) | (rate_index << 10) | (padding << 9) | ((3 if mono else 0) << 6)
    return struct.pack(">I", word)


@pytest.mark.parametrize(
    ("version", "bitrate_index", "rate_index", "padding", "length"),
    [
        (3, 9, 0, 0, 144 * 128_000 // 44_100),  # MPEG-1, 128 kbit/s, 44.1 kHz
        (3, 9, 0, 1, 144 * 128_000 // 44_100 + 1),  # with its padding byte
        (3, 14, 1, 0, 144 * 320_000 // 48_000),  # MPEG-1, 320 kbit/s, 48 kHz
        (2, 8, 0, 0, 72 * 64_000 // 22_050),  # MPEG-2, 64 kbit/s, 22.05 kHz
        (2, 8, 2, 1, 72 * 64_000 // 16_000 + 1),  # MPEG-2, 16 kHz
        (0, 1, 2, 0, 72 * 8_000 // 8_000),  # MPEG-2.5, 8 kbit/s, 8 kHz
    ],
)
def test_frame_length_from_the_header(version, bitrate_index, rate_index, padding, length):
    assert frame_length(header(version, bitrate_index, rate_index, padding)) == length


@pytest.mark.parametrize(
    "data",
    [
        b"ID3\x04\x00\x00\x00\x00",  # an ID3 tag
        header(1, 8, 0, 0),  # a reserved version
        header(3, 0, 0, 0),  # free format: no length of its own
        header(3, 15, 0, 0),  # a reserved bitrate
        header(3, 9, 3, 0),  # a reserved sample rate
        b"\xff\xfd\x90\x00",  # Layer II
    ],
)
def test_what_is_not_a_layer_iii_frame_is_refused(data):
    with pytest.raises(ValueError):
        frame_length(data)


def test_crc16_is_crc16_arc():
    assert crc16(b"123456789") == 0xBB3D  # the catalogue's check value


def one_pass_mp3(samples: np.ndarray, rate: int) -> bytes:
    """What ffmpeg writes to a file: the whole stream behind a true Info frame."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "one.mp3")
        subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "s16le", "-ar", str(rate), "-ac", "1",
             "-i", "pipe:0", "-c:a", "libmp3lame", "-b:a", "64k", "-id3v2_version", "0", "-y", path],
            input=samples.astype("<i2").tobytes(), check=True,
        )
        with open(path, "rb") as file:
            return file.read()


def tag_fields(frame: bytes) -> dict:
    at = frame.find(b"Info")
    delay_padding = int.from_bytes(frame[at + 141 : at + 144], "big")
    zeroed = bytearray(frame)
    zeroed[at + 154 : at + 156] = b"\0\0"
    return {
        "frames": struct.unpack(">I", frame[at + 8 : at + 12])[0],
        "bytes": struct.unpack(">I", frame[at + 12 : at + 16])[0],
        "delay": delay_padding >> 12,
        "padding": delay_padding & 0xFFF,
        "music_length": struct.unpack(">I", frame[at + 148 : at + 152])[0],
        "tag_crc_holds": struct.unpack(">H", frame[at + 154 : at + 156])[0] == crc16(bytes(zeroed[:190])),
    }


@pytest.mark.parametrize(("rate", "seconds"), [(22050, 1.3), (16000, 0.77), (44100, 2.1), (24000, 3.0)])
def test_the_filled_frame_says_what_ffmpeg_says_of_the_same_file(rate, seconds):
    samples = (np.random.default_rng(rate).standard_normal(int(rate * seconds)) * 3000).astype(np.int16)
    data = one_pass_mp3(samples, rate)
    info = data[: frame_length(data)]
    theirs = tag_fields(info)
    # The same frame with its counts, delay, padding and checksum rewritten from ours.
    ours = tag_fields(fill_info_frame(info, theirs["frames"], len(data), len(samples), theirs["delay"]))
    assert ours == theirs
    assert theirs["delay"] + DECODER_DELAY == 1105 and theirs["tag_crc_holds"]


def test_delay_and_padding_must_fit_their_12_bits():
    info = one_pass_mp3(np.zeros(22050, np.int16), 22050)
    info = info[: frame_length(info)]
    with pytest.raises(ValueError, match="12 bits"):
        fill_info_frame(info, 10, 5000, 22050, 576)  # 10 frames cannot hold a second
    with pytest.raises(ValueError, match="no Xing/LAME tag"):
        fill_info_frame(header(2, 8, 0, 0) + bytes(204), 10, 5000, 4000, 576)
