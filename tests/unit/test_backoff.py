"""Retry timing: the wait after each failed attempt, and when no retry is left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskjobs.core.backoff import max_attempts, may_retry, next_retry_time, retry_delay
from taskjobs.core.resolve import ResolvedRetry

DEFAULT = ResolvedRetry()  # limit 3, 10 s, factor 2, cap 300 s


@pytest.mark.parametrize(
    ("failed_attempt", "wait"),
    [(1, 10), (2, 20), (3, 40), (4, 80), (5, 160), (6, 300), (7, 300), (50, 300)],
)
def test_default_waits_double_from_10s_and_stop_at_300s(failed_attempt: int, wait: float) -> None:
    assert retry_delay(DEFAULT, failed_attempt) == wait


@pytest.mark.parametrize(
    ("retry", "failed_attempt", "wait"),
    [
        (ResolvedRetry(delay_seconds=5, factor=1), 9, 5),  # factor 1: constant
        (ResolvedRetry(delay_seconds=0, factor=2), 3, 0),  # no delay at all
        (ResolvedRetry(delay_seconds=1.5, factor=3, max_delay_seconds=100), 3, 13.5),
        (ResolvedRetry(delay_seconds=60, factor=2, max_delay_seconds=30), 1, 30),  # cap below the first delay
        (ResolvedRetry(delay_seconds=10, factor=100, max_delay_seconds=86400), 400, 86400),  # would overflow
        (ResolvedRetry(delay_seconds=86400, factor=100, max_delay_seconds=7), 155, 7),  # product is inf
    ],
)
def test_wait_is_delay_times_factor_to_the_n_minus_1_capped(
    retry: ResolvedRetry, failed_attempt: int, wait: float
) -> None:
    assert retry_delay(retry, failed_attempt) == wait


def test_next_retry_time_is_the_failure_plus_the_wait() -> None:
    failed_at = datetime(2024, 1, 1, tzinfo=UTC)
    assert next_retry_time(DEFAULT, 2, failed_at) == failed_at + timedelta(seconds=20)


def test_after_a_manual_retry_the_wait_counts_afresh_from_the_retry_base() -> None:
    retry = ResolvedRetry()  # 10s doubling
    assert [retry_delay(retry, n, retry_base=3) for n in (4, 5, 6)] == [10.0, 20.0, 40.0]
    failed = datetime(2024, 1, 1, tzinfo=UTC)
    assert next_retry_time(retry, 4, failed, retry_base=3) == failed + timedelta(seconds=10)


def test_a_task_runs_at_most_limit_plus_one_times() -> None:
    retry = ResolvedRetry(limit=2)
    assert max_attempts(retry) == 3
    assert [may_retry(retry, n, 1) for n in (1, 2, 3)] == [True, True, False]
    assert not may_retry(ResolvedRetry(limit=0), 1, 1)


@pytest.mark.parametrize(("exit_code", "retried"), [(1, True), (2, False), (3, False), (None, True)])
def test_non_retriable_exit_codes_end_the_task_at_once(exit_code: int | None, retried: bool) -> None:
    retry = ResolvedRetry(non_retriable_exit_codes=frozenset({2, 3}))
    assert may_retry(retry, 1, exit_code) is retried
