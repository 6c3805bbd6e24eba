"""The Info frame at the head of an MP3 joined from segments.

An MP3 encoded in one pass starts with an Info frame (a silent frame holding
a Xing tag and a LAME tag): the frame and byte counts, a seek table, and the
encoder's delay and padding, from which decoders drop the priming and the
padding and so give back exactly the samples encoded. A file joined from
bare runs of frames has none: it would decode with 50 ms of priming in front
and its length guessed from the bitrate. `fill_info_frame` takes the frame
the encoder wrote for the first segment and rewrites what it says for the
whole file. Layout: the LAME tag specification (Gabriel Bouvigne, "Mp3 info
tag rev 1 specifications").
"""

from __future__ import annotations

import struct

# mpg123 and ffmpeg decode Layer III this many samples late; the tag holds
# the encoder's own delay, which decoders add this to.
DECODER_DELAY = 529

_BITRATES_KBPS = {
    True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),  # MPEG-1
    False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),  # MPEG-2 and 2.5
}
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}

# Offsets from the start of the Xing tag ("Info").
_FRAMES, _BYTES, _TOC = 8, 12, 16
_DELAY_PADDING = 141  # 12 bits each
_MUSIC_LENGTH, _MUSIC_CRC, _TAG_CRC = 148, 152, 154
_TAG_END = 156
_TAG_CRC_SPAN = 190  # the tag's CRC covers the frame's first 190 bytes


def frame_length(header: bytes) -> int:
    """Bytes in the MPEG Layer III frame whose 4-byte header this is."""
    (word,) = struct.unpack(">I", header[:4])
    version, bitrate_index, rate_index = (word >> 19) & 3, (word >> 12) & 15, (word >> 10) & 3
    # Version 1, bitrate 15 and rate 3 are reserved; bitrate 0 is "free format", of no set length.
    if word >> 21 != 0x7FF or (word >> 17) & 3 != 1 or version == 1 or bitrate_index in (0, 15) or rate_index == 3:
        raise ValueError("not an MPEG Layer III frame header")
    mpeg1 = version == 3
    bitrate = _BITRATES_KBPS[mpeg1][bitrate_index] * 1000
    sample_rate = _SAMPLE_RATES[version][rate_index]
    return (144 if mpeg1 else 72) * bitrate // sample_rate + ((word >> 9) & 1)


def _tag_offset(header: bytes) -> int:
    (word,) = struct.unpack(">I", header[:4])
    mpeg1, mono = (word >> 19) & 3 == 3, (word >> 6) & 3 == 3
    side_info = (17 if mono else 32) if mpeg1 else (9 if mono else 17)
    return 4 + side_info


def crc16(data: bytes) -> int:
    """CRC-16/ARC, the LAME tag's checksum."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def fill_info_frame(frame: bytes, frames: int, file_bytes: int, samples: int, encoder_delay: int) -> bytes:
    """`frame` (an encoder's Info frame) made true of a whole file of
    constant bit rate: `frames` audio frames after it, `file_bytes` in all
    (this frame included), decoding to `samples` once the priming
    (`encoder_delay` plus the decoder's) and the padding are dropped.

    The music CRC, a checksum of the audio that no decoder checks, is left
    0: a pure-Python CRC of a long file would cost more than its encoding.
    """
    at = _tag_offset(frame)
    if frame[at : at + 4] not in (b"Info", b"Xing") or len(frame) < at + _TAG_END:
        raise ValueError("the frame holds no Xing/LAME tag")
    samples_per_frame = 1152 if (frame[1] >> 3) & 3 == 3 else 576
    padding = frames * samples_per_frame - encoder_delay - samples
    if not 0 <= padding < 4096 or not 0 <= encoder_delay < 4096:
        raise ValueError(f"delay {encoder_delay} and padding {padding} do not fit the tag's 12 bits each")
    tag = bytearray(frame)
    struct.pack_into(">II", tag, at + _FRAMES, frames, file_bytes)
    # Constant bit rate: the byte offset of i% of the audio is i% of the file.
    tag[at + _TOC : at + _TOC + 100] = bytes(min(255, i * 256 // 100) for i in range(100))
    delay_padding = (encoder_delay << 12) | padding
    tag[at + _DELAY_PADDING : at + _DELAY_PADDING + 3] = delay_padding.to_bytes(3, "big")
    struct.pack_into(">IHH", tag, at + _MUSIC_LENGTH, file_bytes, 0, 0)
    struct.pack_into(">H", tag, at + _TAG_CRC, crc16(bytes(tag[:_TAG_CRC_SPAN])))
    return bytes(tag)
