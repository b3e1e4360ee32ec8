"""Helpers of scheduling's interface tests."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from nameko.testing.services import entrypoint_hook

DENVER = "America/Denver"


def call(container: Any, method: str, *args: Any, **kwargs: Any) -> Any:
    with entrypoint_hook(container, method) as entrypoint:
        return entrypoint(*args, **kwargs)


def a_bookable_start(local_time: time = time(10, 0), days_ahead: int = 3, time_zone: str = DENVER) -> str:
    """A start the calendar accepts: some days ahead, inside visit hours in the patient's time zone."""
    zone = ZoneInfo(time_zone)
    day = datetime.now(zone).date() + timedelta(days=days_ahead)
    return datetime.combine(day, local_time, tzinfo=zone).astimezone(UTC).isoformat()


def book(scheduling: Any, patient_id: str, start_at: str, visit_type: str = "iv-mood", **extra: Any) -> dict:
    return call(scheduling, "book_appointment",
                {"patient_id": patient_id, "visit_type": visit_type, "start_at": start_at, **extra})
