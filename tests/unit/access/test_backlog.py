"""Admission by seconds of work, on a clock the tests move."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicegraph.access.backlog import Backlog


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drained(rate: float, chars: int = 1000, chunks: int = 10, half_life_s: float = 30.0) -> tuple[Backlog, Clock]:
    """A backlog that has done `chunks` chunks of `chars` in all at `rate` characters a second."""
    clock = Clock()
    backlog = Backlog(half_life_s, clock)
    each = chars // chunks
    for _ in range(chunks):
        backlog.sent(each)
    for _ in range(chunks):
        clock.now += each / rate
        backlog.finished(each, each / rate)
    return backlog, clock


def test_the_rate_is_characters_done_per_second_of_work_under_way():
    backlog, clock = drained(rate=200.0)
    assert backlog.chars_per_s() == pytest.approx(200.0, rel=0.02)
    # Idle time is no work: an hour later the speed is what it was.
    clock.now += 3600
    assert backlog.chars_per_s() == pytest.approx(200.0, rel=0.02)


def test_the_rate_follows_a_change_of_speed_within_a_few_half_lives():
    backlog, clock = drained(rate=100.0, half_life_s=10.0)
    for _ in range(60):  # a minute at 400 characters a second
        backlog.sent(400)
        clock.now += 1.0
        backlog.finished(400, 1.0)
    assert backlog.chars_per_s() == pytest.approx(400.0, rel=0.05)


def test_without_a_measure_only_cold_start_chunks_are_let_in_and_one_request_alone_always():
    backlog = Backlog(clock=Clock())
    assert backlog.chars_per_s() is None
    assert backlog.judge([100] * 50, max_wait_s=1, cold_start_chunks=4).admitted  # alone
    for _ in range(3):
        backlog.sent(100)
    assert backlog.judge([100], max_wait_s=1, cold_start_chunks=4).admitted
    refused = backlog.judge([100, 100], max_wait_s=1, cold_start_chunks=4)
    assert not refused.admitted and refused.cause == "cold_start" and refused.retry_after_s is None


# At 100 characters a second, with `ahead` characters already admitted.
@pytest.mark.parametrize(
    ("ahead", "chunks", "max_wait_s", "deadline_s", "cause", "retry_after_s"),
    [
        (0, [5000], 10, None, "", None),  # nothing ahead: a long text alone starts at once
        (900, [300], 10, None, "", None),  # starts in 9 s
        (1500, [300], 10, None, "queue_wait", 5.0),  # would start in 15 s
        (500, [300, 300], 10, 20, "", None),  # done in 11 s, deadline in 20
        (500, [300, 300], 10, 8, "deadline", 3.0),  # done in 11 s, deadline in 8
        (0, [300, 300], 10, 4, "", None),  # nothing to wait for: the deadline stops it if it must
        (500, [300], 10, 2, "too_short", None),  # its one chunk alone takes 3 s (1 s per 100 chars)
    ],
)
def test_a_request_is_judged_by_when_it_would_start_and_end(ahead, chunks, max_wait_s, deadline_s, cause, retry_after_s):
    backlog, _ = drained(rate=100.0, half_life_s=1e5)
    if ahead:
        backlog.sent(ahead)
    verdict = backlog.judge(chunks, max_wait_s, deadline_s)
    assert verdict.admitted is (cause == "")
    assert verdict.cause == cause
    assert verdict.wait_s == pytest.approx(ahead / 100, rel=1e-3)
    assert verdict.finish_s == pytest.approx((ahead + sum(chunks)) / 100, rel=1e-3)
    assert verdict.retry_after_s == (None if retry_after_s is None else pytest.approx(retry_after_s, rel=1e-3))
    if cause:
        assert verdict.reason  # said to the client


def test_chunks_that_fail_or_are_cancelled_leave_the_backlog_without_counting_as_speed():
    backlog, _ = drained(rate=100.0)
    backlog.sent(700)
    backlog.dropped(700)
    assert (backlog.chars, backlog.chunks) == (0, 0)
    assert backlog.chars_per_s() == pytest.approx(100.0, rel=0.02)


@given(
    st.lists(st.tuples(st.integers(1, 2000), st.floats(0.001, 30.0), st.booleans()), min_size=1, max_size=40),
    st.lists(st.integers(1, 2000), min_size=1, max_size=20),
    st.floats(0.5, 60.0),
)
def test_the_verdict_is_consistent_whatever_was_done_before(history, chunks, max_wait_s):
    clock = Clock()
    backlog = Backlog(clock=clock)
    for chars, seconds, failed in history:
        backlog.sent(chars)
        clock.now += seconds
        if failed:
            backlog.dropped(chars)
        else:
            backlog.finished(chars, seconds)
    assert (backlog.chars, backlog.chunks) == (0, 0)
    verdict = backlog.judge(chunks, max_wait_s)
    # Nothing is under way, so the request is let in; with work ahead, the
    # estimate grows with it and a refusal always says how long to wait.
    assert verdict.admitted
    backlog.sent(sum(chunks) * 100)
    ahead = backlog.judge(chunks, max_wait_s)
    if backlog.chars_per_s() is not None:
        assert ahead.wait_s > 0 and ahead.finish_s > ahead.wait_s
        if not ahead.admitted:
            assert ahead.retry_after_s == pytest.approx(ahead.wait_s - max_wait_s)
