"""Streamed audio from a growing sequence of GPT latents, at the cost of one pass.

coqui-tts's `inference_stream` runs HiFi-GAN over every latent so far at each
piece, so a stream costs the square of its length. Here each piece decodes a
window: the frames not yet sent, a little left context, and a little right
lookahead that is held back until more latents come. HiFi-GAN's receptive field
is short (measured: 16 frames of left context give the same samples to 1e-7,
the right edge moves the last ~900 samples), so the pieces joined are the
whole sequence decoded at once, and a stream costs about what the plain call
costs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

# Frames, in the decoder's input rate (one frame = `hop` samples out).
LEFT_CONTEXT_FRAMES = 16
# The last frames change when more latents arrive: the decoder's own right
# edge (4 frames) and the linear upsampling of the last latent.
RIGHT_EDGE_FRAMES = 4


class WindowedVocoder:
    """One stream's vocoder. `upsample` turns all latents so far (1, T, C) into
    decoder frames (1, C, F), cheaply and the same for a prefix whatever
    follows it, except the last `frames_per_latent` frames; `decode` turns a
    window of frames into `hop` samples per frame."""

    def __init__(self, upsample: Callable, decode: Callable, hop: int, frames_per_latent: float):
        self._upsample = upsample
        self._decode = decode
        self._hop = hop
        self._lookahead = RIGHT_EDGE_FRAMES + 2 * math.ceil(frames_per_latent)
        self._sent_frames = 0
        self.decoded_frames = 0  # the work done, for tests and benchmarks

    def piece(self, latents, final: bool):
        """The audio after what was sent, up to what no later latent can change
        (everything when `final`); None when nothing new is settled yet."""
        frames = self._upsample(latents)
        total = frames.shape[-1]
        end = total if final else total - self._lookahead
        if end <= self._sent_frames:
            return None
        start = max(0, self._sent_frames - LEFT_CONTEXT_FRAMES)
        audio = self._decode(frames[..., start:]).reshape(-1)
        self.decoded_frames += total - start
        piece = audio[(self._sent_frames - start) * self._hop : (end - start) * self._hop]
        self._sent_frames = end
        return piece
