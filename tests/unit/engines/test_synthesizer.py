import numpy as np
import pytest

from voicegraph.core.errors import ReplicaFaultError, SynthesisError, UnknownVoiceError
from voicegraph.engines.base import Engine, EngineInfo, VoiceInfo
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
