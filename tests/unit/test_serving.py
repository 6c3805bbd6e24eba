"""The ingress's request path with stand-in handles: faults Serve cannot be made to produce on a CPU."""

import asyncio

import numpy as np
import pytest

from serve_app.errors import ReplicaFaultError
from serve_app.settings import Settings
from serve_app.tts.serving import SpeechJob, TTSServing


class Response:
    def __init__(self, outcome):
        self.outcome = outcome
        self.cancelled = False

    def __await__(self):
        async def resolve():
            await asyncio.sleep(0)
            if isinstance(self.outcome, BaseException):
                raise self.outcome
            return self.outcome

        return resolve().__await__()

    def cancel(self):
        self.cancelled = True


class Method:
    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    def remote(self, *args):
        self.calls += 1
        return Response(self.outcomes.pop(0))


class Synthesizer:
    def __init__(self, outcomes):
        self.synthesize = Method(outcomes)


def serving(outcomes, retries=3):
    settings = Settings(synthesizer={"replica_fault_retries": retries, "replica_fault_backoff_s": 0})
    return TTSServing(settings, None, Synthesizer(outcomes), None, None, None)


JOB = SpeechJob("Hello.", "default", "default", "en-us", "wav", 1.0)
AUDIO = np.ones(4, dtype=np.float32)


def test_a_chunk_hit_by_a_replica_fault_is_sent_again():
    tts = serving([ReplicaFaultError("illegal memory access"), ReplicaFaultError("still broken"), AUDIO])
    assert asyncio.run(tts._synthesize_chunk("Hello.", JOB)) is AUDIO
    assert tts._synthesizer.synthesize.calls == 3


def test_a_chunk_whose_replica_died_is_sent_again():
    from ray.exceptions import ActorDiedError, ActorUnavailableError

    tts = serving([ActorDiedError(), ActorUnavailableError("unreachable", None), AUDIO])
    assert asyncio.run(tts._synthesize_chunk("Hello.", JOB)) is AUDIO
    assert tts._synthesizer.synthesize.calls == 3


def test_replica_faults_beyond_the_retries_fail_the_request():
    tts = serving([ReplicaFaultError("broken")] * 3, retries=2)
    with pytest.raises(ReplicaFaultError):
        asyncio.run(tts._synthesize_chunk("Hello.", JOB))
    assert tts._synthesizer.synthesize.calls == 3


def test_other_errors_are_not_resent():
    tts = serving([ValueError("bug")])
    with pytest.raises(ValueError):
        asyncio.run(tts._synthesize_chunk("Hello.", JOB))
    assert tts._synthesizer.synthesize.calls == 1
