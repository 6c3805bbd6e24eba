"""Reference audio → a cloned voice and a short sample of it.

`VoiceCloner` owns everything about the reference (decoding any
container, trimming silence, length limits); the engine work itself runs on a
Synthesizer replica, the only place the model is loaded. The VoiceCloner
deployment is a thin shell around it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from voicegraph.audio.reference import ANALYSIS_RATE, decode_audio, prepare_reference
from voicegraph.audio.stitching import Stitcher
from voicegraph.core.errors import InvalidAudioError, PayloadTooLargeError
from voicegraph.core.settings import Settings
from voicegraph.engines import ClonedVoice, EngineInfo, Voice


@dataclass(frozen=True)
class ClonedReference:
    voice: ClonedVoice
    speech_s: float  # seconds of reference speech the voice was made from
    original_s: float  # seconds of audio in the file before trimming
    sample_wav: bytes | None  # the new voice reading VoiceSettings.sample_text


def check_reference_bytes(data: bytes, max_bytes: int) -> None:
    if not data:
        raise InvalidAudioError("the reference audio is empty; send a recording of 3-30 s of speech")
    if len(data) > max_bytes:
        raise PayloadTooLargeError(
            f"the reference audio is {len(data)} bytes; the limit is {max_bytes} bytes"
        )


class Synthesizer(Protocol):
    """The Synthesizer deployment's methods, awaited."""

    async def clone_voice(self, pcm: np.ndarray, rate: int) -> ClonedVoice: ...
    async def describe(self) -> EngineInfo: ...
    async def synthesize(self, text: str, voice: Voice, language: str, speed: float) -> np.ndarray: ...


class VoiceCloner:
    def __init__(self, settings: Settings, synthesizers: dict[str, Synthesizer]):
        self._settings = settings
        self._synthesizers = synthesizers  # by engine
        self._stitcher = Stitcher(settings)

    async def clone(self, data: bytes, language: str, engine: str, with_sample: bool = True) -> ClonedReference:
        """A voice of `engine` (which the caller checked can clone) from `data`."""
        synthesizer = self._synthesizers[engine]
        voices = self._settings.voices
        check_reference_bytes(data, voices.max_upload_bytes)
        # ffmpeg and the analysis are CPU work: keep this replica's loop free.
        pcm = await asyncio.to_thread(decode_audio, data, ANALYSIS_RATE, voices.max_decode_s)
        reference = prepare_reference(
            pcm, ANALYSIS_RATE, min_speech_s=voices.min_speech_s, max_speech_s=voices.max_speech_s
        )
        voice: ClonedVoice = await synthesizer.clone_voice(reference.pcm, reference.rate)
        sample = None
        if with_sample:
            sample = await self._sample(synthesizer, voice, language)
        return ClonedReference(voice, reference.speech_s, reference.original_s, sample)

    async def _sample(self, synthesizer: Synthesizer, voice: ClonedVoice, language: str) -> bytes:
        info = await synthesizer.describe()
        pcm = await synthesizer.synthesize(
            self._settings.voices.sample_text, voice, language, 1.0
        )
        # Through the stitcher's loudness and encoding, so a sample sounds like a generation.
        return self._stitcher.stitch([pcm], info.sample_rate, "wav").data
