"""Speech streamed as it is made: the response of POST /v1/tts/stream, and
of POST /v1/audio/speech with `stream` or events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import numpy as np
from fastapi.responses import StreamingResponse

from serve_app.tts.protocol import SpeechParams
from serve_app.tts.serving import TTSServing
from voicegraph.audio.formats import audio_format, content_type
from voicegraph.audio.streaming import check_stream_format, encode_stream


async def speech_stream(tts: TTSServing, body: SpeechParams, deadline: float | None = None) -> StreamingResponse:
    # Everything that can be refused is checked before the 200 goes out.
    job = await tts.validate(body)
    fmt = check_stream_format(audio_format(job.format))
    info = tts.engine_of(job)
    headers = {"X-Accel-Buffering": "no", "Cache-Control": "no-store", "X-Engine": job.engine}
    if job.voice_cache_hit is not None:
        headers["X-Voice-Cache"] = "hit" if job.voice_cache_hit else "miss"
    sample_rate = info.sample_rate_for(job.voice)
    pieces = tts.stream(job, deadline)
    # The first audio is awaited before the 200 goes out: a refusal (the
    # service is overloaded) is still an error answer, not a cut-off stream.
    first = await anext(pieces)
    return StreamingResponse(
        encode_stream(_resumed(first, pieces), sample_rate, fmt, tts.settings.encoder_options()),
        media_type=content_type(fmt, sample_rate),
        headers=headers,
    )


async def _resumed(first: np.ndarray, rest: AsyncIterator[np.ndarray]) -> AsyncIterator[np.ndarray]:
    # Closing this closes `rest`, which cancels the chunks under way.
    async with aclosing(rest):
        yield first
        async for piece in rest:
            yield piece
