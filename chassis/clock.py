"""UTC time. Everything is stored as timezone-aware UTC instants; local time is only for display."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, to the millisecond: the precision MongoDB stores, so what is returned equals what is read back."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_utc(moment: datetime) -> datetime:
    """The same instant as an aware UTC datetime (naive datetimes from the store are UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def isoformat(moment: datetime) -> str:
    return as_utc(moment).isoformat().replace("+00:00", "Z")


def utc(moment: datetime | None = None) -> datetime:
    """``moment`` in UTC (a naive datetime is refused: its zone is unknown), or now when None."""
    if moment is None:
        return utcnow()
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC)
