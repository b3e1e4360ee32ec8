from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pymongo.database import Database

from gateway.ratelimit import RateLimiter, RateLimitRule

# A window boundary of both rules (60 s and 300 s) an hour ahead of the real clock: the store's TTL index
# would reap counters stamped in the past, and the module is imported minutes before a long suite reaches it.
WINDOW_START = datetime.fromtimestamp((int(datetime.now(UTC).timestamp()) // 300 + 12) * 300, UTC)


@pytest.fixture
def limiter(db: Database) -> RateLimiter:
    return RateLimiter(
        db,
        default_rule=RateLimitRule(limit=3, window_seconds=60),
        route_rules={"login": RateLimitRule(limit=1, window_seconds=300)},
    )


def test_hits_within_the_limit_are_allowed_and_count_down(limiter: RateLimiter) -> None:
    decisions = [
        limiter.hit("c-1", "list_patients", now=WINDOW_START + timedelta(seconds=i)) for i in range(3)
    ]
    assert [decision.allowed for decision in decisions] == [True, True, True]
    assert [decision.remaining for decision in decisions] == [2, 1, 0]
    assert all(decision.limit == 3 and decision.retry_after_seconds == 0 for decision in decisions)
    assert decisions[0].reset_at == WINDOW_START + timedelta(seconds=60)


@pytest.mark.parametrize(
    ("seconds_into_window", "retry_after"),
    # the budget comes back when the window's three hits, sliding out, weigh at most two: 20 s into the next
    [(0, 80), (10, 70), (59.2, 21), (30.5, 50)],
)
def test_the_hit_over_the_limit_is_refused_with_retry_after(
    limiter: RateLimiter, seconds_into_window: float, retry_after: int
) -> None:
    now = WINDOW_START + timedelta(seconds=seconds_into_window)
    for _ in range(3):
        assert limiter.hit("c-1", "list_patients", now=now).allowed
    refused = limiter.hit("c-1", "list_patients", now=now)
    assert not refused.allowed
    assert refused.remaining == 0
    assert refused.retry_after_seconds == retry_after
    assert refused.headers(now=now) == {
        "RateLimit-Limit": "3",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": str(retry_after),
        "Retry-After": str(retry_after),
    }


def test_no_double_burst_at_a_window_edge(limiter: RateLimiter) -> None:
    """A fixed window let 3 hits at 0:59 and 3 more at 1:00 through: 6 in two seconds for a limit of 3 a minute."""
    before_edge = [limiter.hit("c-1", "r", now=WINDOW_START + timedelta(seconds=59)) for _ in range(3)]
    after_edge = [limiter.hit("c-1", "r", now=WINDOW_START + timedelta(seconds=60)) for _ in range(3)]
    assert [decision.allowed for decision in before_edge + after_edge] == [True] * 3 + [False] * 3


@pytest.mark.parametrize(
    ("seconds_after_the_edge", "allowed"),
    # the previous window's 3 hits weigh what of it still lies in the last 60 s: 3, 2.5, 1.5, 0.5, 0
    [(0, 0), (10, 0), (30, 1), (50, 2), (60, 3)],
)
def test_the_previous_window_weighs_by_how_much_of_it_is_still_in_the_last_minute(
    limiter: RateLimiter, seconds_after_the_edge: int, allowed: int
) -> None:
    for _ in range(3):
        assert limiter.hit("c-1", "r", now=WINDOW_START + timedelta(seconds=30)).allowed
    now = WINDOW_START + timedelta(seconds=60 + seconds_after_the_edge)
    decisions = [limiter.hit("c-1", "r", now=now) for _ in range(4)]
    assert sum(decision.allowed for decision in decisions) == allowed


def test_refused_hits_do_not_use_the_budget(limiter: RateLimiter) -> None:
    for _ in range(10):  # 3 allowed, 7 refused: only the 3 count
        limiter.hit("c-1", "r", now=WINDOW_START)
    halfway = WINDOW_START + timedelta(seconds=90)  # the 3 weigh 1.5: one more fits
    assert [limiter.hit("c-1", "r", now=halfway).allowed for _ in range(2)] == [True, False]


def test_clients_do_not_share_a_budget(limiter: RateLimiter) -> None:
    for _ in range(4):
        limiter.hit("c-1", "list_patients", now=WINDOW_START)
    assert limiter.hit("c-2", "list_patients", now=WINDOW_START).allowed


def test_routes_do_not_share_a_budget(limiter: RateLimiter) -> None:
    for _ in range(4):
        limiter.hit("c-1", "list_patients", now=WINDOW_START)
    assert limiter.hit("c-1", "get_patient", now=WINDOW_START).allowed


def test_route_rule_overrides_the_default(limiter: RateLimiter) -> None:
    first = limiter.hit("c-1", "login", now=WINDOW_START)
    second = limiter.hit("c-1", "login", now=WINDOW_START + timedelta(seconds=100))
    assert (first.allowed, first.limit) == (True, 1)
    assert not second.allowed
    assert second.retry_after_seconds == 500  # the one hit weighs nothing once its window has slid out
    assert limiter.rule_for("login") == RateLimitRule(1, 300)
    assert limiter.rule_for("anything-else") == RateLimitRule(3, 60)


def test_separator_in_ids_cannot_merge_two_budgets(limiter: RateLimiter) -> None:
    for _ in range(4):
        limiter.hit("a|b", "c", now=WINDOW_START)
    assert limiter.hit("a", "b|c", now=WINDOW_START).allowed


def test_limiters_in_several_processes_share_the_count(db: Database) -> None:
    rule = RateLimitRule(limit=2, window_seconds=60)
    first, second = RateLimiter(db, rule), RateLimiter(db, rule)
    assert first.hit("c-1", "r", now=WINDOW_START).allowed
    assert second.hit("c-1", "r", now=WINDOW_START).allowed
    assert not first.hit("c-1", "r", now=WINDOW_START).allowed


def test_concurrent_hits_are_counted_exactly(limiter: RateLimiter) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=6) as pool:
        decisions = list(pool.map(lambda _: limiter.hit("c-1", "r", now=WINDOW_START), range(6)))
    assert sum(decision.allowed for decision in decisions) == 3


def test_purge_expired_deletes_windows_that_no_longer_weigh(limiter: RateLimiter, db: Database) -> None:
    limiter.hit("c-1", "r", now=WINDOW_START)
    limiter.hit("c-1", "r", now=WINDOW_START + timedelta(seconds=60))
    assert limiter.purge_expired(now=WINDOW_START + timedelta(seconds=61)) == 0  # the first still weighs
    assert limiter.purge_expired(now=WINDOW_START + timedelta(seconds=121)) == 1
    assert db.rate_limit_windows.count_documents({}) == 1


@pytest.mark.parametrize(("limit", "window"), [(0, 60), (5, 0), (-1, 10)])
def test_rule_refuses_nonsense(limit: int, window: int) -> None:
    with pytest.raises(ValueError):
        RateLimitRule(limit, window)
