"""Sliding-window rate limits per client and route, shared by every gateway process.

The count of the last ``window_seconds`` is estimated from two fixed windows: the current one's count plus
the previous one's, weighted by how much of the previous window still lies in the last ``window_seconds``.
So a client cannot spend its budget at the end of one window and again at the start of the next (a fixed
window let twice the limit through across an edge).

Each (client, route, window) has one counter document. A hit is one conditional ``$inc``: it increments
the current window only while its count is below what the previous window leaves of the budget, so the
decision and the count are one atomic write (concurrent gateway processes never let more through; the
previous window is only read, and its window is over), and a
refused hit changes nothing (it uses no budget). A counter is kept until the window after its own ends
(``expires_at``), while it still weighs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from chassis.clock import utc

COLLECTION = "rate_limit_windows"


@dataclass(frozen=True)
class RateLimitRule:
    """At most ``limit`` requests per ``window_seconds``."""

    limit: int
    window_seconds: int

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window_seconds < 1:
            raise ValueError("a rate limit needs limit >= 1 and window_seconds >= 1")


@dataclass(frozen=True)
class Decision:
    """Whether one request may go ahead, and what to tell the client."""

    allowed: bool
    limit: int
    remaining: int
    retry_after_seconds: int
    reset_at: datetime

    def headers(self, now: datetime | None = None) -> dict[str, str]:
        """``RateLimit-*`` response headers, plus ``Retry-After`` when refused."""
        reset_in = max(0, math.ceil((self.reset_at - utc(now)).total_seconds()))
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(reset_in),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_seconds)
        return headers


class RateLimiter:
    """Counts requests per client and route against the rule for that route."""

    def __init__(
        self,
        db: Database,
        default_rule: RateLimitRule,
        route_rules: Mapping[str, RateLimitRule] | None = None,
    ) -> None:
        self._windows = db[COLLECTION]
        self._default_rule = default_rule
        self._route_rules = dict(route_rules or {})
        self._windows.create_index("expires_at", expireAfterSeconds=0)

    def rule_for(self, route: str) -> RateLimitRule:
        """The rule that applies to ``route``."""
        return self._route_rules.get(route, self._default_rule)

    def hit(self, client_id: str, route: str, now: datetime | None = None) -> Decision:
        """Count one request by ``client_id`` on ``route`` if it is allowed; refused, it is not counted."""
        now = utc(now)
        rule = self.rule_for(route)
        limit, window = rule.limit, rule.window_seconds
        window_start = int(now.timestamp()) // window * window
        elapsed = now.timestamp() - window_start
        key = f"{_escape(client_id)}|{_escape(route)}"
        previous = self._windows.find_one({"_id": f"{key}|{window_start - window}"}) or {}
        previous_weight = int(previous.get("count", 0)) * (window - elapsed) / window
        # the most this window may count, once this hit is in
        cap = math.floor(limit - previous_weight + 1e-9)
        expires_at = datetime.fromtimestamp(window_start + 2 * window, UTC)  # it weighs in the next window
        count = _take(self._windows, f"{key}|{window_start}", cap, expires_at)
        reset_at = datetime.fromtimestamp(window_start + window, UTC)
        if count is not None:
            return Decision(True, limit, max(0, cap - count), 0, reset_at)
        current = self._windows.find_one({"_id": f"{key}|{window_start}"}) or {}
        retry_after = _seconds_until_allowed(rule, int(previous.get("count", 0)), int(current.get("count", 0)),
                                             elapsed)
        return Decision(False, limit, 0, retry_after, now + timedelta(seconds=retry_after))

    def purge_expired(self, now: datetime | None = None) -> int:
        """Delete the counters of windows that have ended; returns how many."""
        return self._windows.delete_many({"expires_at": {"$lte": utc(now)}}).deleted_count



def _take(windows: Collection, window_id: str, cap: int, expires_at: datetime) -> int | None:
    """Increment the window's count if it stays within ``cap``: its new count, or None (nothing changed)."""
    if cap < 1:
        return None
    below_cap = {"_id": window_id, "count": {"$lt": cap}}
    try:  # a window nobody counted in yet is created with a count of 1
        counter = windows.find_one_and_update(
            below_cap, {"$inc": {"count": 1}, "$setOnInsert": {"expires_at": expires_at}},
            upsert=True, return_document=ReturnDocument.AFTER)
    except DuplicateKeyError:
        # the window exists and is full, or another process created it just now: only a real slot counts
        counter = windows.find_one_and_update(below_cap, {"$inc": {"count": 1}}, return_document=ReturnDocument.AFTER)
    return None if counter is None else int(counter["count"])


def _seconds_until_allowed(rule: RateLimitRule, previous: int, current: int, elapsed: float) -> int:
    """When one more hit fits: the previous window's weight has slid out enough, or (the current window being
    full) its own count, as the previous one of the next window, weighs little enough."""
    limit, window = rule.limit, rule.window_seconds
    if current + 1 <= limit and previous:
        wait = window * (1 - (limit - current - 1) / previous) - elapsed
    else:
        wait = (window - elapsed) + window * (1 - (limit - 1) / max(current, 1))
    return max(1, math.ceil(wait - 1e-9))


def _escape(part: str) -> str:
    """Keep ``|`` out of key parts so that different (client, route) pairs never collide."""
    return quote(part, safe="/:@.{}-_~")
