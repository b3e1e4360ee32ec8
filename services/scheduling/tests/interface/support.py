"""Helpers of scheduling's interface tests."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from nameko.testing.services import entrypoint_hook

from chassis.events import Event
from chassis.ids import new_id

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


def place_hold(scheduling, patient_id: str, start_at: str, visit_type: str = "iv-mood", **extra) -> dict:
    return call(scheduling, "place_hold",
                {"patient_id": patient_id, "visit_type": visit_type, "start_at": start_at, **extra})


def deposit_paid(scheduling, hold: dict, event_id: str | None = None) -> None:
    """billing's ``deposit.paid`` delivered to scheduling's handler (a redelivery repeats the event id)."""
    event = Event(event_id or new_id("evt"), "deposit.paid", 1, datetime.now(UTC), "c-test", "billing",
                  {"hold_id": hold["id"], "patient_id": hold["patient_id"]})
    with entrypoint_hook(scheduling, "book_paid_hold") as handle:
        handle(event)
