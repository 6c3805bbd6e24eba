"""The Stitcher deployment: PCM parts → one encoded file, whole or segment by segment."""

from __future__ import annotations

import asyncio

import numpy as np
from ray import serve

from voicegraph.audio import stitching
from voicegraph.core.settings import Settings


@serve.deployment(name="Stitcher")
class Stitcher:
    def __init__(self, settings: Settings):
        self._stitcher = stitching.Stitcher(settings)

    # Encoding shells out to ffmpeg: keep the replica's event loop free meanwhile.
    async def stitch(self, parts: list[np.ndarray], sample_rate: int, format_name: str) -> stitching.StitchedAudio:
        return await asyncio.to_thread(self._stitcher.stitch, parts, sample_rate, format_name)

    async def encode_segment(self, parts: list[np.ndarray], index: int, plan: stitching.SegmentPlan) -> bytes:
        return await asyncio.to_thread(self._stitcher.encode_segment, parts, index, plan)
