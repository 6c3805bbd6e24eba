import logging

import numpy as np
import pytest

from voicegraph.core.errors import ReplicaFaultError, SynthesisError, UnknownVoiceError
from voicegraph.engines.base import ChunkRequest, Engine, EngineInfo, VoiceInfo
from voicegraph.engines.synthesizer import Synthesizer


class FlakyEngine(Engine):
    """Fails a set number of times: transient engine faults cannot be caused on demand."""

    def __init__(self, failures: int, error: Exception):
        self.failures = failures
        self.error = error
        self.calls = 0

    def info(self) -> EngineInfo:
        return EngineInfo(
            engine="flaky", model="flaky", sample_rate=20, languages=("en",),
            voices=(VoiceInfo("v", "V", ""),), default_language="en",
        )

    def clone(self, pcm, rate):
        raise NotImplementedError

    def synthesize(self, text, voice, language, speed, sampling=None):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return np.ones(10, dtype=np.float32)


@pytest.mark.parametrize("failures", [0, 1, 2])
def test_transient_errors_are_retried_up_to_twice(failures):
    engine = FlakyEngine(failures, RuntimeError("device busy"))
    pcm = Synthesizer(engine, retries=2, backoff_s=0).synthesize("hi", "v", "en", 1.0)
    assert len(pcm) == 10
    assert engine.calls == failures + 1


def test_third_failure_is_a_synthesis_error():
    engine = FlakyEngine(3, RuntimeError("device busy"))
    with pytest.raises(SynthesisError, match="after 3 attempts: device busy"):
        Synthesizer(engine, retries=2, backoff_s=0).synthesize("hi", "v", "en", 1.0)
    assert engine.calls == 3


@pytest.mark.parametrize(
    "error", [UnknownVoiceError("no such voice"), ReplicaFaultError("illegal memory access")]
)
def test_input_errors_and_replica_faults_are_not_retried_here(error):
    engine = FlakyEngine(5, error)
    with pytest.raises(type(error)):
        Synthesizer(engine, retries=2, backoff_s=0).synthesize("hi", "v", "en", 1.0)
    assert engine.calls == 1


def test_a_chunk_records_its_outcome_audio_seconds_real_time_factor_and_retries(recorded_metrics):
    Synthesizer(FlakyEngine(1, RuntimeError("device busy")), retries=2, backoff_s=0).synthesize("hi", "v", "en", 1.0)
    assert recorded_metrics.total("voicegraph_chunks", engine="flaky", outcome="ok") == 1
    assert recorded_metrics.total("voicegraph_chunk_retries", engine="flaky") == 1
    assert recorded_metrics.total("voicegraph_audio_seconds", engine="flaky") == pytest.approx(0.5)  # 10 samples at 20 Hz
    [(_, rtf, _)] = [record for record in recorded_metrics.records if record[0] == "voicegraph_real_time_factor"]
    [(_, latency, _)] = [record for record in recorded_metrics.records if record[0] == "voicegraph_chunk_latency_s"]
    assert rtf == pytest.approx(latency / 0.5)


def test_a_failed_chunk_is_counted_as_failed(recorded_metrics):
    with pytest.raises(SynthesisError):
        Synthesizer(FlakyEngine(5, RuntimeError("device busy")), retries=1, backoff_s=0).synthesize("hi", "v", "en", 1.0)
    assert recorded_metrics.total("voicegraph_chunks", outcome="failed") == 1
    assert recorded_metrics.total("voicegraph_chunks", outcome="ok") == 0


class BatchingEngine(FlakyEngine):
    """Decodes a batch at once, or fails it with `batch_error`; one chunk's
    audio is as long as its text, so each result can be told apart."""

    default_batch_size = 8

    def __init__(self, batch_error: Exception | None = None, bad_text: str | None = None):
        super().__init__(0, RuntimeError())
        self.batch_error = batch_error
        self.bad_text = bad_text
        self.batches = []

    def synthesize(self, text, voice, language, speed, sampling=None):
        if text == self.bad_text:
            raise UnknownVoiceError(f"no voice for {text}")
        return np.ones(len(text), dtype=np.float32)

    def synthesize_batch(self, chunks):
        self.batches.append([chunk.text for chunk in chunks])
        if self.batch_error is not None:
            raise self.batch_error
        return [self.synthesize(c.text, c.voice, c.language, c.speed) for c in chunks]


CHUNKS = [ChunkRequest(text, "v", "en") for text in ("a", "bb", "ccc")]


def test_a_batch_is_decoded_together_and_each_chunk_counted(recorded_metrics):
    engine = BatchingEngine()
    results = Synthesizer(engine, backoff_s=0).synthesize_batch(CHUNKS)
    assert [len(pcm) for pcm in results] == [1, 2, 3]
    assert engine.batches == [["a", "bb", "ccc"]]
    assert recorded_metrics.total("voicegraph_chunks", engine="flaky", outcome="ok") == 3


def test_a_bad_chunk_fails_alone_and_the_others_are_spoken():
    engine = BatchingEngine(batch_error=UnknownVoiceError("no voice for bb"), bad_text="bb")
    results = Synthesizer(engine, backoff_s=0).synthesize_batch(CHUNKS)
    assert len(results[0]) == 1 and len(results[2]) == 3
    assert isinstance(results[1], UnknownVoiceError)


def test_a_broken_replica_fails_every_chunk_of_the_batch(recorded_metrics):
    fault = ReplicaFaultError("illegal memory access")
    results = Synthesizer(BatchingEngine(batch_error=fault), backoff_s=0).synthesize_batch(CHUNKS)
    assert results == [fault, fault, fault]
    assert recorded_metrics.total("voicegraph_chunks", engine="flaky", outcome="failed") == 3


def test_one_chunk_takes_the_one_chunk_path_with_its_retries():
    engine = BatchingEngine()
    assert len(Synthesizer(engine, backoff_s=0).synthesize_batch(CHUNKS[:1])[0]) == 1
    assert engine.batches == []


def test_batch_log_lines_name_every_request_in_the_batch(caplog):
    """A batch runs outside any one request's context: its lines say whose chunks it held."""
    chunks = [ChunkRequest(text, "v", "en", request_id=f"req-{text}") for text in ("a", "bb", "ccc")]
    with caplog.at_level(logging.INFO, logger="ray.serve"):
        Synthesizer(BatchingEngine(), backoff_s=0).synthesize_batch(chunks)
        Synthesizer(BatchingEngine(batch_error=RuntimeError("out of memory")), backoff_s=0).synthesize_batch(chunks)
        Synthesizer(BatchingEngine(batch_error=ReplicaFaultError("illegal memory access")), backoff_s=0).synthesize_batch(
            chunks
        )
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 3, lines
    for line in lines:
        assert "requests req-a, req-bb, req-ccc" in line, line


def test_a_retried_chunk_of_a_batch_names_its_request(caplog):
    engine = FlakyEngine(1, RuntimeError("device busy"))
    with caplog.at_level(logging.WARNING, logger="ray.serve"):
        Synthesizer(engine, backoff_s=0).synthesize_batch([ChunkRequest("hi", "v", "en", request_id="req-7")])
    assert [record.getMessage() for record in caplog.records] == [
        "chunk synthesis failed (attempt 1) (request req-7): RuntimeError('device busy')"
    ]


class PieceEngine(BatchingEngine):
    """Streams each chunk in pieces of one sample per character, in turn (the base
    class's stream_batch), or fails after `fail_after` pieces."""

    def __init__(self, fail_after: int | None = None, error: Exception | None = None):
        super().__init__()
        self.fail_after, self.error, self.pieces = fail_after, error, 0

    def synthesize_stream(self, text, voice, language, speed, sampling=None):
        for _ in text:
            if self.fail_after is not None and self.pieces >= self.fail_after:
                raise self.error
            self.pieces += 1
            yield np.ones(1, dtype=np.float32)


def test_the_base_stream_batch_streams_chunks_in_turn_and_ends_each_with_none():
    steps = list(PieceEngine().stream_batch(CHUNKS))
    shape = [[None if piece is None else len(piece) for piece in step] for step in steps]
    assert shape == [[1, 0, 0], [None, 1, 0], [None, 1, 0], [None, None, 1], [None, None, 1], [None, None, 1]]


def test_streamed_chunks_are_counted_once_each_with_their_audio(recorded_metrics):
    synthesizer = Synthesizer(PieceEngine(), backoff_s=0)
    steps = list(synthesizer.stream_batch(CHUNKS))
    assert len(steps) == 6 and synthesizer.pieces_done == 6 and synthesizer.stream_batches_done == 1
    assert synthesizer.chunks_done == 3
    assert recorded_metrics.total("voicegraph_chunks", engine="flaky", outcome="ok") == 3
    assert recorded_metrics.total("voicegraph_audio_seconds", engine="flaky") == pytest.approx(6 / 20)


@pytest.mark.parametrize(
    "error, raised",
    [
        (RuntimeError("device busy"), SynthesisError),
        (ReplicaFaultError("illegal memory access"), ReplicaFaultError),
        (UnknownVoiceError("no such voice"), UnknownVoiceError),
    ],
)
def test_a_stream_that_fails_fails_its_unfinished_chunks(recorded_metrics, caplog, error, raised):
    # After 2 pieces: "a" has ended, "bb" is under way, "ccc" not started.
    synthesizer = Synthesizer(PieceEngine(fail_after=2, error=error), backoff_s=0)
    chunks = [ChunkRequest(c.text, c.voice, c.language, request_id=f"req-{c.text}") for c in CHUNKS]
    with caplog.at_level(logging.WARNING, logger="ray.serve"), pytest.raises(raised):
        list(synthesizer.stream_batch(chunks))
    assert recorded_metrics.total("voicegraph_chunks", outcome="ok") == 1
    assert recorded_metrics.total("voicegraph_chunks", outcome="failed") == 2
    assert "req-a, req-bb, req-ccc" in caplog.text
