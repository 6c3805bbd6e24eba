"""One chunk through an engine, retrying transient faults."""

from __future__ import annotations

import logging
import time

import numpy as np

from voicegraph.core import metrics
from voicegraph.core.errors import InvalidRequestError, ReplicaFaultError, SynthesisError
from voicegraph.core.retry import Retry, retry_call
from voicegraph.engines.base import Engine, Sampling, Voice

logger = logging.getLogger("ray.serve")


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
        self._info = engine.info()
        self._policy = Retry(
            retry_on=(Exception,),
            never=(InvalidRequestError, ReplicaFaultError),
            retries=retries,
            initial_s=backoff_s,
        )

    def synthesize(
        self, text: str, voice: Voice, language: str, speed: float, sampling: Sampling = Sampling()
    ) -> np.ndarray:
        engine = self._info.engine
        started = time.perf_counter()
        try:
            pcm = retry_call(
                lambda: self.engine.synthesize(text, voice, language, speed, sampling),
                self._policy,
                on_retry=self._retrying,
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
        elapsed_s = time.perf_counter() - started
        audio_s = len(pcm) / self._info.sample_rate_for(voice)
        metrics.count("voicegraph_chunks", engine=engine, outcome="ok")
        metrics.observe("voicegraph_chunk_latency_s", elapsed_s, engine=engine)
        metrics.count("voicegraph_audio_seconds", audio_s, engine=engine)
        if audio_s > 0:
            metrics.observe("voicegraph_real_time_factor", elapsed_s / audio_s, engine=engine)
        self.chunks_done += 1
        return pcm

    def _retrying(self, exc: BaseException, failures: int, delay_s: float) -> None:
        metrics.count("voicegraph_chunk_retries", engine=self._info.engine)
        logger.warning("chunk synthesis failed (attempt %d): %r", failures, exc)
