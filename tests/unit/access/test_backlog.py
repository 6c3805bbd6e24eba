"""Admission by seconds of work, on a clock the tests move."""

import contextlib

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
    """A backlog that has done `chunks` requests of `chars` in all, one after another, at `rate` characters a second."""
    clock = Clock()
    backlog = Backlog(half_life_s, clock)
    each = chars // chunks
    for _ in range(chunks):
        work = backlog.start(each)
        clock.now += each / rate
        work.finish()
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
        work = backlog.start(400)
        clock.now += 1.0
        work.finish()
    assert backlog.chars_per_s() == pytest.approx(400.0, rel=0.05)


def test_without_a_measure_only_cold_start_requests_are_let_in():
    backlog = Backlog(clock=Clock())
    assert backlog.chars_per_s() is None
    assert backlog.judge(5000, max_wait_s=1, cold_start_requests=4).admitted
    with contextlib.ExitStack() as under_way:
        for _ in range(3):
            under_way.enter_context(backlog.request())
            backlog.start(100)
        # Work that is not a client's request (a job's) does not count.
        backlog.start(100)
        assert backlog.judge(100, max_wait_s=1, cold_start_requests=4).admitted
        under_way.enter_context(backlog.request())
        refused = backlog.judge(100, max_wait_s=1, cold_start_requests=4)
        assert not refused.admitted and refused.cause == "cold_start" and refused.retry_after_s is None
    # Answered or given up: gone from the count, whatever became of its work.
    assert backlog.requests == 0
    assert backlog.judge(100, max_wait_s=1, cold_start_requests=4).admitted


# At 100 characters a second, with `ahead` characters already admitted.
@pytest.mark.parametrize(
    ("ahead", "chars", "max_wait_s", "deadline_s", "cause", "retry_after_s"),
    [
        (0, 5000, 10, None, "", None),  # nothing ahead: a long text alone starts at once
        (900, 300, 10, None, "", None),  # starts in 9 s
        (1500, 300, 10, None, "queue_wait", 5.0),  # would start in 15 s
        (500, 600, 10, 20, "", None),  # done in 11 s, deadline in 20
        (1500, 300, 10, 20, "", None),  # done in 18 s: its client said it would wait, so the 10 s do not apply
        (500, 600, 10, 8, "deadline", 3.0),  # done in 11 s, deadline in 8
        (0, 600, 10, 7, "", None),  # nothing ahead: done in 6 s
        (0, 600, 10, 4, "too_short", None),  # 6 s even with nothing ahead: waiting cannot help
        (500, 300, 10, 2, "too_short", None),
    ],
)
def test_a_request_is_judged_by_when_it_would_start_and_end(ahead, chars, max_wait_s, deadline_s, cause, retry_after_s):
    backlog, _ = drained(rate=100.0, half_life_s=1e5)
    if ahead:
        backlog.start(ahead)
    verdict = backlog.judge(chars, max_wait_s, deadline_s)
    assert verdict.admitted is (cause == "")
    assert verdict.cause == cause
    assert verdict.wait_s == pytest.approx(ahead / 100, rel=1e-3)
    assert verdict.finish_s == pytest.approx((ahead + chars) / 100, rel=1e-3)
    assert verdict.retry_after_s == (None if retry_after_s is None else pytest.approx(retry_after_s, rel=1e-3))
    if cause:
        assert verdict.reason  # said to the client


def test_work_is_in_the_backlog_until_it_finishes():
    backlog, clock = drained(rate=100.0)
    work = backlog.start(1000)
    clock.now += 11  # chunks, then stitching and encoding
    assert (backlog.chars, backlog.items) == (1000, 1)
    work.finish()
    assert (backlog.chars, backlog.items) == (0, 0)
    # 1,000 characters in 11 s under way: the speed drops below 100 a second.
    assert 90 < backlog.chars_per_s() < 100


def test_work_that_fails_or_is_cancelled_leaves_the_backlog_without_counting_as_speed():
    backlog, _ = drained(rate=100.0)
    work = backlog.start(700)
    work.drop()
    assert (backlog.chars, backlog.items) == (0, 0)
    assert backlog.chars_per_s() == pytest.approx(100.0, rel=0.02)


def test_the_margin_stretches_every_estimate():
    backlog, _ = drained(rate=100.0, half_life_s=1e5)
    backlog.start(500)
    plain, stretched = backlog.judge(100, 10), backlog.judge(100, 10, margin=1.5)
    assert stretched.wait_s == pytest.approx(1.5 * plain.wait_s)
    assert stretched.finish_s == pytest.approx(1.5 * plain.finish_s)


@given(
    st.lists(st.tuples(st.integers(1, 2000), st.floats(0.001, 30.0), st.booleans()), min_size=1, max_size=40),
    st.integers(1, 40_000),
    st.floats(0.5, 60.0),
)
def test_the_verdict_is_consistent_whatever_was_done_before(history, chars, max_wait_s):
    clock = Clock()
    backlog = Backlog(clock=clock)
    for work_chars, seconds, failed in history:
        work = backlog.start(work_chars)
        clock.now += seconds
        if failed:
            work.drop()
        else:
            work.finish()
    assert (backlog.chars, backlog.items) == (0, 0)
    verdict = backlog.judge(chars, max_wait_s)
    # Nothing is under way, so the request is let in; with work ahead, the
    # estimate grows with it and a refusal always says how long to wait.
    assert verdict.admitted
    backlog.start(chars * 100)
    ahead = backlog.judge(chars, max_wait_s)
    if backlog.chars_per_s() is not None:
        assert ahead.wait_s > 0 and ahead.finish_s > ahead.wait_s
        if not ahead.admitted:
            assert ahead.retry_after_s == pytest.approx(ahead.wait_s - max_wait_s)


def test_work_ends_once():
    clock = Clock()
    backlog = Backlog(clock=clock)
    work = backlog.start(300)
    clock.now += 1.0
    work.drop()  # e.g. answered from the cache: no measure of speed
    work.finish()
    work.drop()
    assert (backlog.items, backlog.chars, backlog.chars_per_s()) == (0, 0, None)


def test_time_of_work_dropped_or_still_under_way_does_not_slow_the_measure():
    """A job cancelled after a minute, a client that left, a request stuck on
    something else: their time says nothing of how fast work gets done."""
    clock = Clock()
    backlog = Backlog(clock=clock)
    for _ in range(30):
        work = backlog.start(400)
        clock.now += 1.0
        work.finish()
    measured = backlog.chars_per_s()
    stuck = backlog.start(1000)
    cancelled = backlog.start(5000)
    for _ in range(60):  # a minute of them, beside work that finishes at the same pace
        work = backlog.start(400)
        clock.now += 1.0
        work.finish()
    clock.now += 30.0  # then half a minute when nothing else is under way
    cancelled.drop()
    hit = backlog.start(400)  # answered from the cache: dropped, whatever its time
    clock.now += 0.5
    hit.drop()
    assert backlog.chars_per_s() == pytest.approx(measured, rel=0.05)
    assert backlog.chars == stuck.chars


def test_overlapping_work_counts_its_time_once():
    clock = Clock()
    backlog = Backlog(clock=clock)
    for _ in range(20):  # two at once, each 200 characters in a second: 400 a second
        first, second = backlog.start(200), backlog.start(200)
        clock.now += 1.0
        first.finish()
        second.finish()
    assert backlog.chars_per_s() == pytest.approx(400.0, rel=0.05)
