"""The one retry policy: backoff delays and the retry loops."""

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicegraph.core.retry import Retry, backoff_s, retry_async, retry_call


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [
        (1, 0.0, 0.5),
        (1, 0.5, 0.75),
        (2, 0.0, 1.0),
        (3, 0.5, 3.0),
        (9, 0.0, 128.0),
        (10, 0.0, 150.0),  # 256 capped at 300
        (10, 0.999, 299.85),
        (10_000, 0.0, 150.0),
    ],
)
def test_backoff(attempt, rand, expected):
    assert backoff_s(attempt, 1.0, 300.0, rand=lambda: rand) == pytest.approx(expected)


@given(
    attempt=st.integers(min_value=1, max_value=100_000),
    initial_s=st.floats(min_value=0.001, max_value=60),
    extra_s=st.floats(min_value=0, max_value=3600),
    rand=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_backoff_bounds(attempt, initial_s, extra_s, rand):
    max_s = initial_s + extra_s
    wait = backoff_s(attempt, initial_s, max_s, rand=lambda: rand)
    assert initial_s / 2 <= wait <= max_s
    # The ceiling (rand -> 1) never shrinks as attempts go on.
    assert backoff_s(attempt, initial_s, max_s, rand=lambda: 1.0) <= backoff_s(
        attempt + 1, initial_s, max_s, rand=lambda: 1.0
    )


def test_backoff_without_jitter_doubles_to_the_cap():
    assert [backoff_s(n, 0.2, 1.0, jitter=False) for n in range(1, 6)] == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0])


class Flaky:
    """Fails with the given exceptions in turn, then returns "done"."""

    def __init__(self, *failures):
        self.failures = list(failures)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


@pytest.mark.parametrize(
    ("failures", "policy", "outcome", "calls"),
    [
        ((), Retry((OSError,), retries=2, initial_s=0), "done", 1),
        ((OSError(),) * 2, Retry((OSError,), retries=2, initial_s=0), "done", 3),
        ((OSError(),) * 3, Retry((OSError,), retries=2, initial_s=0), OSError, 3),
        ((ValueError(),), Retry((OSError,), retries=2, initial_s=0), ValueError, 1),
        ((FileNotFoundError(),), Retry((OSError,), never=(FileNotFoundError,), initial_s=0), FileNotFoundError, 1),
        ((OSError(),) * 5, Retry((OSError,), initial_s=0), "done", 6),
        # The deadline stops retries whose wait would pass it.
        ((OSError(),) * 5, Retry((OSError,), initial_s=10, deadline_s=1), OSError, 1),
    ],
)
def test_retry_call_and_retry_async_agree(failures, policy, outcome, calls):
    for run in (lambda f: retry_call(f, policy), lambda f: asyncio.run(retry_async(_coroutine(f), policy))):
        flaky = Flaky(*failures)
        if isinstance(outcome, type):
            with pytest.raises(outcome):
                run(flaky)
        else:
            assert run(flaky) == outcome
        assert flaky.calls == calls


def _coroutine(call):
    async def wrapped():
        return call()

    return wrapped


def test_on_retry_sees_each_failure_and_its_delay():
    seen = []
    policy = Retry((OSError,), retries=3, initial_s=0.001, max_s=0.002)
    retry_call(Flaky(OSError("a"), OSError("b")), policy, on_retry=lambda exc, n, delay: seen.append((str(exc), n, delay)))
    assert seen == [("a", 1, 0.001), ("b", 2, 0.002)]
