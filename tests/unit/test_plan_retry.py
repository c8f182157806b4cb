"""Manual retry (`taskjob retry`): failed and skipped tasks run again, succeeded ones are kept."""

from __future__ import annotations

from test_plan import META, at, created, fact, make_spec, phases, run, task, written

from taskjobs.core.actions import RetryRequest
from taskjobs.core.models import TaskJobStatus
from taskjobs.core.plan import plan

SPEC = make_spec(
    task("a"), task("bad", "a", retry={"limit": 1}), task("after", "bad"), task("side", "a"),
    defaults={"image": "x", "retry": {"backoff": {"delaySeconds": 1}}},
)
# a succeeded; bad failed twice (limit 1); after skipped; side succeeded.
FACTS = [
    fact("a", 1, "Succeeded", created=0),
    fact("bad", 1, "Failed", created=5),
    fact("bad", 2, "Failed", created=12),
    fact("side", 1, "Succeeded", created=5),
]


def failed_status() -> TaskJobStatus:
    p = run(SPEC, FACTS, now=30)
    assert p.status.phase == "Failed" and phases(p)["after"] == "Skipped"
    return written(p.status)


def retry(status: TaskJobStatus, facts: list, now: float, nonce: str = "n1", tasks: tuple[str, ...] | None = None):
    return plan(META, SPEC, status, facts, at(now), RetryRequest(nonce=nonce, tasks=tasks))


def test_retry_restarts_the_failed_task_with_the_next_attempt_number() -> None:
    p = retry(failed_status(), FACTS, now=40)
    assert created(p) == [("bad", 3)]  # attempts continue: Job tj-bad-3, never a name already used
    assert phases(p) == {"a": "Succeeded", "bad": "Running", "after": "Waiting", "side": "Succeeded"}
    assert p.status.phase == "Running"
    assert p.status.completion_time is None
    assert p.status.observed_retry == "n1"
    assert p.status.tasks["bad"].retry_base == 2
    assert ("RetryRequested", "re-running tasks: bad, after") in [(e.reason, e.message) for e in p.events]


def test_the_same_retry_request_is_applied_once() -> None:
    first = retry(failed_status(), FACTS, now=40)
    again = retry(written(first.status), FACTS, now=41)  # the Job for attempt 3 is not observed yet
    assert created(again) == []
    assert phases(again)["bad"] == "Running"


def test_after_a_retry_the_limit_counts_afresh_and_the_run_can_succeed() -> None:
    status = written(retry(failed_status(), FACTS, now=40).status)
    facts = [*FACTS, fact("bad", 3, "Failed", created=40)]
    p = retry(status, facts, now=50)  # limit 1: one more attempt after the base of 2
    assert created(p) == [("bad", 4)]
    facts.append(fact("bad", 4, "Succeeded", created=50))
    p = retry(written(p.status), facts, now=60)
    assert created(p) == [("after", 1)]
    facts.append(fact("after", 1, "Succeeded", created=60))
    p = retry(written(p.status), facts, now=70)
    assert p.status.phase == "Succeeded"
    assert p.status.progress == "4/4"


def test_retrying_one_task_leaves_other_failures_alone() -> None:
    spec = make_spec(task("x", retry={"limit": 0}), task("y", retry={"limit": 0}), defaults={"image": "i"},
                     failurePolicy="ContinueIndependent")
    facts = [fact("x", 1, "Failed"), fact("y", 1, "Failed")]
    status = written(plan(META, spec, None, facts, at(20)).status)
    p = plan(META, spec, status, facts, at(30), RetryRequest(nonce="n", tasks=("x",)))
    assert created(p) == [("x", 2)]
    assert phases(p)["y"] == "Failed"


def test_without_a_request_nothing_is_retried() -> None:
    status = failed_status()
    p = run(SPEC, FACTS, now=100, status=status)
    assert created(p) == [] and p.status.phase == "Failed"
