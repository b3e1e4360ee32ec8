"""Timezone-aware UTC timestamps, the only kind the gateway stores or compares."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(moment: datetime | None = None) -> datetime:
    """``moment`` converted to UTC, or the current time when None; naive datetimes are refused."""
    if moment is None:
        return datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC)
