"""Fixed-window rate limits per client and route, shared by every gateway process.

Each (client, route, window) has one counter document incremented with an atomic
``$inc`` upsert, so concurrent gateway processes count into the same budget. Counter
documents carry ``expires_at`` (the end of their window) and are purged afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from pymongo import ReturnDocument
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
        """Count one request by ``client_id`` on ``route`` and decide whether it is allowed."""
        now = utc(now)
        rule = self.rule_for(route)
        window = rule.window_seconds
        window_start = int(now.timestamp()) // window * window
        reset_at = datetime.fromtimestamp(window_start + window, UTC)
        count = self._increment(f"{_escape(client_id)}|{_escape(route)}|{window_start}", reset_at)
        allowed = count <= rule.limit
        retry_after = 0 if allowed else max(1, math.ceil((reset_at - now).total_seconds()))
        return Decision(allowed, rule.limit, max(0, rule.limit - count), retry_after, reset_at)

    def purge_expired(self, now: datetime | None = None) -> int:
        """Delete the counters of windows that have ended; returns how many."""
        return self._windows.delete_many({"expires_at": {"$lte": utc(now)}}).deleted_count

    def _increment(self, window_id: str, expires_at: datetime) -> int:
        for _ in range(2):
            try:
                counter = self._windows.find_one_and_update(
                    {"_id": window_id},
                    {"$inc": {"count": 1}, "$setOnInsert": {"expires_at": expires_at}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
                return int(counter["count"])
            except DuplicateKeyError:
                continue  # two processes upserted the same new window at once; the retry updates it
        raise RuntimeError(f"could not count rate limit window {window_id}")


def _escape(part: str) -> str:
    """Keep ``|`` out of key parts so that different (client, route) pairs never collide."""
    return quote(part, safe="/:@.{}-_~")
