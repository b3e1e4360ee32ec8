"""Scheduling rules as plain functions: visit windows, slot keys and booking limits.

A nurse's time is cut into fixed slots (``slot_minutes``). An appointment owns the keys of every slot its
visit and the travel buffers around it cover (``nurse|2026-11-24T15:00Z``); a unique index on those keys
in the store makes a double booking impossible, even with several scheduling processes racing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from chassis.clock import as_utc
from chassis.config import ConfigVersion


class VisitTypeSchema(Schema):
    name = fields.String(required=True)
    duration_minutes = fields.Integer(required=True, validate=validate.Range(min=15, max=12 * 60))


class CalendarSchema(Schema):
    slot_minutes = fields.Integer(required=True, validate=validate.OneOf([5, 10, 15, 20, 30, 60]))
    travel_buffer_minutes = fields.Integer(required=True, validate=validate.Range(min=0, max=240))
    minimum_notice_hours = fields.Integer(required=True, validate=validate.Range(min=0))
    maximum_days_ahead = fields.Integer(required=True, validate=validate.Range(min=1))
    earliest_start = fields.Time(required=True)
    latest_start = fields.Time(required=True)
    visit_types = fields.Dict(keys=fields.String(validate=validate.Regexp(r"^[a-z0-9-]+$")),
                              values=fields.Nested(VisitTypeSchema), required=True)

    @validates_schema
    def _durations_fit_slots(self, data: dict[str, Any], **_: Any) -> None:
        for code, visit_type in data["visit_types"].items():
            if visit_type["duration_minutes"] % data["slot_minutes"]:
                raise ValidationError(f"{code}: duration is not a whole number of slots")
        if data["travel_buffer_minutes"] % data["slot_minutes"]:
            raise ValidationError("travel buffer is not a whole number of slots")


class BookingRefused(Exception):
    """A requested time breaks a calendar rule; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class VisitWindow:
    start_at: datetime
    end_at: datetime
    local_start: datetime


def visit_window(calendar: ConfigVersion, visit_type: str, start_at: datetime, time_zone: str,
                 now: datetime) -> VisitWindow:
    """The visit's UTC window, or ``BookingRefused`` if the calendar does not allow that start."""
    visit_types = calendar["visit_types"]
    if visit_type not in visit_types:
        raise BookingRefused("unknown_visit_type", f"no visit type {visit_type!r}")
    start_at = as_utc(start_at)
    slot = timedelta(minutes=calendar["slot_minutes"])
    if (start_at - datetime(2000, 1, 1, tzinfo=start_at.tzinfo)) % slot or start_at.second or start_at.microsecond:
        raise BookingRefused("start_not_on_slot", f"visits start on {calendar['slot_minutes']}-minute boundaries")
    if start_at < now + timedelta(hours=calendar["minimum_notice_hours"]):
        raise BookingRefused("too_soon", f"book at least {calendar['minimum_notice_hours']} hours ahead")
    if start_at > now + timedelta(days=calendar["maximum_days_ahead"]):
        raise BookingRefused("too_far_ahead", f"book at most {calendar['maximum_days_ahead']} days ahead")
    local_start = start_at.astimezone(ZoneInfo(time_zone))
    earliest: time = calendar["earliest_start"]
    latest: time = calendar["latest_start"]
    if not earliest <= local_start.time().replace(tzinfo=None) <= latest:
        raise BookingRefused("outside_visit_hours",
                             f"visits start between {earliest:%H:%M} and {latest:%H:%M} local time")
    end_at = start_at + timedelta(minutes=visit_types[visit_type]["duration_minutes"])
    return VisitWindow(start_at=start_at, end_at=end_at, local_start=local_start)


def slot_keys(calendar: ConfigVersion, nurse_id: str, window: VisitWindow) -> list[str]:
    """The keys of every slot of the nurse's time the visit takes, travel buffers included."""
    slot = timedelta(minutes=calendar["slot_minutes"])
    buffer = timedelta(minutes=calendar["travel_buffer_minutes"])
    cursor, end = window.start_at - buffer, window.end_at + buffer
    keys = []
    while cursor < end:
        keys.append(f"{nurse_id}|{cursor.strftime('%Y-%m-%dT%H:%MZ')}")
        cursor += slot
    return keys


def patient_slot_keys(calendar: ConfigVersion, patient_id: str, window: VisitWindow) -> list[str]:
    """The keys of the patient's own time the visit takes (``patient:pat_1|2026-11-24T15:00Z``): claimed beside
    the nurse's under the same unique index, so one patient can never hold two overlapping visits."""
    slot = timedelta(minutes=calendar["slot_minutes"])
    cursor, keys = window.start_at, []
    while cursor < window.end_at:
        keys.append(f"patient:{patient_id}|{cursor.strftime('%Y-%m-%dT%H:%MZ')}")
        cursor += slot
    return keys


def nurses_for(nurses: list[dict[str, Any]], state: str, preferred: str | None = None) -> list[dict[str, Any]]:
    """Active nurses licensed where the patient lives; the requested one only, if one was asked for."""
    licensed = [n for n in nurses if n.get("active", True) and state in n["licensed_states"]]
    if preferred is not None:
        return [n for n in licensed if n["_id"] == preferred]
    return sorted(licensed, key=lambda n: n["_id"])
