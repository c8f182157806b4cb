"""Retry timing: how long to wait after a failed attempt, and whether another attempt is allowed.

Pure: no clock, no I/O. Attempts are numbered from 1; the wait after attempt n fails is
min(delaySeconds·factor^(n-1), maxDelaySeconds), and no wait follows the last attempt. After a manual
retry (`taskjob retry`), n counts afresh from the task's retryBase: attempt base+1 waits delaySeconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .resolve import ResolvedRetry


def max_attempts(retry: ResolvedRetry) -> int:
    """Return how many attempts a task may make in all: the first plus `limit` retries."""
    return retry.limit + 1


def retry_delay(retry: ResolvedRetry, failed_attempt: int, retry_base: int = 0) -> float:
    """Return the seconds to wait after attempt `failed_attempt` (1-based) fails, before the next one starts."""
    cap = retry.max_delay_seconds
    exponent = max(failed_attempt - retry_base, 1) - 1
    if retry.delay_seconds <= 0:
        return 0.0
    try:
        delay = retry.delay_seconds * retry.factor**exponent
    except OverflowError:  # factor 100 after 200 attempts: far past any cap
        return cap
    return min(delay, cap)  # a product of finite floats may still be inf; min handles it


def next_retry_time(retry: ResolvedRetry, failed_attempt: int, failed_at: datetime, retry_base: int = 0) -> datetime:
    """Return when the attempt after `failed_attempt` may start, given when that attempt failed."""
    return failed_at + timedelta(seconds=retry_delay(retry, failed_attempt, retry_base))


def is_non_retriable(retry: ResolvedRetry, exit_code: int | None) -> bool:
    """Return whether this exit code fails the task at once, with no retry."""
    return exit_code is not None and exit_code in retry.non_retriable_exit_codes


def may_retry(retry: ResolvedRetry, attempt: int, exit_code: int | None) -> bool:
    """Return whether a task whose attempt `attempt` failed with `exit_code` gets another attempt."""
    return attempt < max_attempts(retry) and not is_non_retriable(retry, exit_code)
