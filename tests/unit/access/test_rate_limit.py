"""Token buckets and the per-key limiter, on a clock the tests move."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicegraph.access.rate_limit import RateLimiter, TokenBucket
from voicegraph.core.settings import ApiKey, AuthSettings, KeyLimits

KEY = ApiKey(name="app", sha256="0" * 64)


def limits(**values) -> RateLimiter:
    return RateLimiter(AuthSettings(limits=KeyLimits(**values)))


@pytest.mark.parametrize(
    ("rate", "capacity", "takes", "expected_waits"),
    [
        # (time, amount) taken in order; the wait each would have had before taking.
        (1.0, 3, [(0, 1), (0, 1), (0, 1), (0, 1)], [0, 0, 0, 1.0]),
        (2.0, 1, [(0, 1), (0.25, 1), (0.5, 1)], [0, 0.25, 0]),
        (10.0, 100, [(0, 60), (0, 60), (3, 60)], [0, 2.0, 0]),
    ],
)
def test_bucket_waits(rate, capacity, takes, expected_waits):
    bucket = TokenBucket(rate, capacity, now=0)
    waits = []
    for now, amount in takes:
        wait = bucket.wait_s(amount, now)
        waits.append(wait)
        if wait == 0:
            bucket.take(amount, now)
    assert waits == pytest.approx(expected_waits)


def test_bucket_never_fills_past_capacity():
    bucket = TokenBucket(5.0, 10, now=0)
    assert bucket.tokens(1000) == 10 and bucket.full_in_s(1000) == 0


def test_burst_then_refusal_with_retry_after():
    limiter = limits(requests_per_s=2, request_burst=3)
    admitted = [limiter.admit(KEY, 1, 0, now=0).allowed for _ in range(4)]
    assert admitted == [True, True, True, False]
    refused = limiter.admit(KEY, 1, 0, now=0)
    assert (refused.exceeded, refused.retry_after_s, refused.requests.remaining) == ("requests", 0.5, 0)
    assert limiter.admit(KEY, 1, 0, now=0.5).allowed


def test_characters_per_minute():
    limiter = limits(chars_per_min=600)
    assert limiter.admit(KEY, 0, 500, now=0).allowed
    refused = limiter.admit(KEY, 0, 200, now=0)
    assert (refused.allowed, refused.exceeded) == (False, "characters")
    assert refused.retry_after_s == pytest.approx(10.0)  # 100 missing at 10 per second
    assert limiter.admit(KEY, 0, 200, now=10).allowed


def test_a_refused_request_costs_nothing():
    limiter = limits(requests_per_s=1, request_burst=5, chars_per_min=100)
    limiter.admit(KEY, 0, 90, now=0)
    assert not limiter.admit(KEY, 1, 50, now=0).allowed
    assert limiter.admit(KEY, 0, 0, now=0).requests.remaining == 5


def test_more_characters_than_the_bucket_holds_can_never_pass():
    refused = limits(chars_per_min=100).admit(KEY, 0, 101, now=0)
    assert (refused.allowed, refused.exceeded, refused.retry_after_s) == (False, "characters", math.inf)


def test_keys_have_their_own_buckets_and_their_own_limits():
    other = ApiKey(name="batch", sha256="1" * 64, limits=KeyLimits(request_burst=1))
    limiter = limits(request_burst=2)
    assert [limiter.admit(KEY, 1, 0, now=0).allowed for _ in range(3)] == [True, True, False]
    assert [limiter.admit(other, 1, 0, now=0).allowed for _ in range(2)] == [True, False]


def test_quota_reports_what_is_left_and_when_full():
    admission = limits(requests_per_s=4, request_burst=8).admit(KEY, 1, 0, now=0)
    assert (admission.requests.limit, admission.requests.remaining) == (8, 7)
    assert admission.requests.reset_s == pytest.approx(0.25)


@given(
    rate=st.floats(0.1, 100),
    burst=st.integers(1, 50),
    times=st.lists(st.floats(0, 60), min_size=1, max_size=200),
)
def test_never_admits_more_than_burst_plus_refill(rate, burst, times):
    limiter = limits(requests_per_s=rate, request_burst=burst)
    times = sorted(times)
    admitted = sum(limiter.admit(KEY, 1, 0, now=now).allowed for now in times)
    assert admitted <= burst + rate * (times[-1] - times[0]) + 1e-9
