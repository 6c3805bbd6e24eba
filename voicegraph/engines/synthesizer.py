"""Chunks through an engine, one at a time or decoded together, retrying transient faults."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import numpy as np

from voicegraph.core import metrics
from voicegraph.core.errors import InvalidRequestError, ReplicaFaultError, SynthesisError
from voicegraph.core.retry import Retry, retry_call
from voicegraph.engines.base import ChunkRequest, Engine, Sampling, TimedAudio, Voice

logger = logging.getLogger("ray.serve")

T = TypeVar("T", np.ndarray, TimedAudio)


class Synthesizer:
    """Runs one chunk through an engine, retrying transient faults.

    Errors caused by the input (`InvalidRequestError`) would fail the same way
    again, and a `ReplicaFaultError` means this replica is broken, so both are
    raised at once; anything else is retried `retries` times with a growing
    pause, then reported as a `SynthesisError`.
    """

    def __init__(self, engine: Engine, retries: int = 2, backoff_s: float = 0.2):
        self.engine = engine
        self.retries = retries
        self.chunks_done = 0  # on this replica: shows how a text fanned out
        self.batches_done = 0  # fewer than its chunks: chunks were decoded together
        self.stream_batches_done = 0  # chunks streamed in pieces, decoded together
        self.pieces_done = 0
        self._info = engine.info()
        self._policy = Retry(
            retry_on=(Exception,),
            never=(InvalidRequestError, ReplicaFaultError),
            retries=retries,
            initial_s=backoff_s,
        )

    def synthesize(
        self,
        text: str,
        voice: Voice,
        language: str,
        speed: float,
        sampling: Sampling = Sampling(),
        request_id: str = "",
    ) -> np.ndarray:
        call = self.engine.synthesize
        return self._attempt(lambda: call(text, voice, language, speed, sampling), voice, request_id)

    def synthesize_timed(
        self,
        text: str,
        voice: Voice,
        language: str,
        speed: float,
        sampling: Sampling = Sampling(),
        request_id: str = "",
    ) -> TimedAudio:
        """`synthesize`, with when each word is said."""
        call = self.engine.synthesize_timed
        return self._attempt(lambda: call(text, voice, language, speed, sampling), voice, request_id)

    def _attempt(self, call: Callable[[], T], voice: Voice, request_id: str) -> T:
        engine = self._info.engine
        started = time.perf_counter()
        try:
            result = retry_call(
                call,
                self._policy,
                on_retry=lambda exc, failures, delay_s: self._retrying(exc, failures, request_id),
            )
        except (InvalidRequestError, ReplicaFaultError):
            # Bad input fails again anywhere; a broken replica fails again here.
            metrics.count("voicegraph_chunks", engine=engine, outcome="failed")
            raise
        except Exception as exc:
            metrics.count("voicegraph_chunks", engine=engine, outcome="failed")
            raise SynthesisError(
                f"synthesis failed after {self.retries + 1} attempts: {exc}"
            ) from exc
        pcm = result.pcm if isinstance(result, TimedAudio) else result
        self._done(voice, len(pcm), time.perf_counter() - started)
        return result

    def synthesize_batch(self, chunks: Sequence[ChunkRequest]) -> list[np.ndarray | Exception]:
        """Each chunk's audio, or its own error, decoded together where the
        engine can. A batch the engine fails on is taken chunk by chunk, each
        with its own retries, so a bad chunk fails alone; a broken replica
        fails them all, to be resent elsewhere."""
        self.batches_done += 1
        started = time.perf_counter()
        requests = ", ".join(chunk.request_id or "-" for chunk in chunks)
        try:
            pcms = self.engine.synthesize_batch(chunks) if len(chunks) > 1 else None
        except ReplicaFaultError as exc:
            logger.error("a batch of %d chunks (requests %s) broke this replica: %r", len(chunks), requests, exc)
            for _ in chunks:
                metrics.count("voicegraph_chunks", engine=self._info.engine, outcome="failed")
            return [exc] * len(chunks)
        except Exception as exc:
            logger.warning(
                "a batch of %d chunks (requests %s) failed (%r); taking them one at a time", len(chunks), requests, exc
            )
            pcms = None
        if pcms is None:
            return [self._outcome(chunk) for chunk in chunks]
        # Each chunk waited for the whole batch: that is its latency.
        elapsed_s = time.perf_counter() - started
        logger.info("decoded %d chunks together in %.2f s (requests %s)", len(chunks), elapsed_s, requests)
        for chunk, pcm in zip(chunks, pcms):
            self._done(chunk.voice, len(pcm), elapsed_s)
        return pcms

    def stream_batch(self, chunks: Sequence[ChunkRequest]) -> Iterator[list[np.ndarray | None]]:
        """`Engine.stream_batch`, with the metrics of each chunk once it has
        ended. A stream cannot be retried once pieces are out: an error ends
        every chunk of the batch (a broken replica's `ReplicaFaultError` as is)."""
        self.stream_batches_done += 1
        started = time.perf_counter()
        samples = [0] * len(chunks)
        ended = [False] * len(chunks)
        requests = ", ".join(chunk.request_id or "-" for chunk in chunks)
        try:
            for step in self.engine.stream_batch(chunks):
                for index, piece in enumerate(step):
                    if piece is None and not ended[index]:
                        ended[index] = True
                        self._done(chunks[index].voice, samples[index], time.perf_counter() - started)
                    elif piece is not None:
                        samples[index] += len(piece)
                        self.pieces_done += bool(len(piece))
                yield step
        except GeneratorExit:
            raise
        except Exception as exc:
            logger.warning("a stream batch of %d chunks (requests %s) failed: %r", len(chunks), requests, exc)
            for index in range(len(chunks)):
                if not ended[index]:
                    metrics.count("voicegraph_chunks", engine=self._info.engine, outcome="failed")
            if isinstance(exc, (InvalidRequestError, ReplicaFaultError)):
                raise
            raise SynthesisError(f"streamed synthesis failed: {exc}") from exc
        for index, chunk in enumerate(chunks):
            if not ended[index]:
                self._done(chunk.voice, samples[index], time.perf_counter() - started)

    def _outcome(self, chunk: ChunkRequest) -> np.ndarray | Exception:
        try:
            return self.synthesize(
                chunk.text, chunk.voice, chunk.language, chunk.speed, chunk.sampling, chunk.request_id
            )
        except Exception as exc:
            return exc

    def _done(self, voice: Voice, samples: int, elapsed_s: float) -> None:
        engine = self._info.engine
        audio_s = samples / self._info.sample_rate_for(voice)
        metrics.count("voicegraph_chunks", engine=engine, outcome="ok")
        metrics.observe("voicegraph_chunk_latency_s", elapsed_s, engine=engine)
        metrics.count("voicegraph_audio_seconds", audio_s, engine=engine)
        if audio_s > 0:
            metrics.observe("voicegraph_real_time_factor", elapsed_s / audio_s, engine=engine)
        self.chunks_done += 1

    def _retrying(self, exc: BaseException, failures: int, request_id: str) -> None:
        metrics.count("voicegraph_chunk_retries", engine=self._info.engine)
        # Outside a batch, Serve tags the line with its request itself.
        whose = f" (request {request_id})" if request_id else ""
        logger.warning("chunk synthesis failed (attempt %d)%s: %r", failures, whose, exc)
