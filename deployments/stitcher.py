"""The Stitcher deployment: PCM parts → one encoded file."""

from __future__ import annotations

import asyncio

import numpy as np
from ray import serve

from voicegraph.audio.stitching import AudioStitcher, StitchedAudio
from voicegraph.core.settings import Settings


@serve.deployment(name="Stitcher")
class Stitcher:
    def __init__(self, settings: Settings):
        self._stitcher = AudioStitcher(settings)

    async def stitch(self, parts: list[np.ndarray], sample_rate: int, format_name: str) -> StitchedAudio:
        # Encoding shells out to ffmpeg: keep the replica's event loop free meanwhile.
        return await asyncio.to_thread(self._stitcher.stitch, parts, sample_rate, format_name)
