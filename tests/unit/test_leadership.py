"""The HA gate applies kopf's peering rule: act only when no live peer has a higher or equal priority."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskjobs.shell.leadership import may_act

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def peer(priority: int, seen_ago: float, lifetime: float = 15) -> dict[str, object]:
    return {"priority": priority, "lastseen": (NOW - timedelta(seconds=seen_ago)).isoformat(), "lifetime": lifetime}


@pytest.mark.parametrize(
    ("mine", "peers", "acts"),
    [
        (100, {"me": peer(100, 0)}, True),
        (100, {"me": peer(100, 0), "other": peer(50, 0)}, True),
        (50, {"me": peer(50, 0), "other": peer(100, 0)}, False),
        (50, {"me": peer(50, 0), "other": peer(100, 20)}, True),  # the higher one stopped renewing: presumed dead
        (100, {"me": peer(100, 0), "other": peer(100, 0)}, False),  # a tie pauses both, as kopf does
        (100, {"other": peer(10, 0)}, False),  # kopf has not announced us yet: its watches are not running
        (100, {"me": peer(100, 0), "other": "garbage"}, True),
    ],
)
def test_may_act(mine: int, peers: dict[str, object], acts: bool) -> None:
    assert may_act(peers, "me", mine, NOW) is acts  # type: ignore[arg-type]
