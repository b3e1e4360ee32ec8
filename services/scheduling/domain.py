"""Scheduling rules as plain functions: when a visit may start, which keys of time it claims, and where in a
nurse's day it fits once travel between home visits is counted.

Three ideas carry the whole booking model:

- **One fixed key grid.** Time is keyed on a 5-minute grid (``GRID``) that no configuration changes. A claim
  owns one key per grid cell of its visit, for the nurse (``nur_kim|2026-11-25T15:00Z``) and for the patient
  (``pat_1|2026-11-25T15:00Z``); a unique index on those keys makes overlapping visits of one nurse, or of one
  patient with two nurses, impossible whatever the number of processes. ``slot_minutes`` in the calendar only
  decides which start times are *offered* (every 15 minutes on the local clock, say); a new calendar version
  with another slot size cannot make two claims overlap without sharing a key.
- **Travel between the two addresses, not a fixed buffer.** A visit claims only its own time. A nurse's next
  visit may start when the previous one has ended plus the travel between the two addresses (from home base
  for the first visit of a shift); ``open_gaps`` computes, for a nurse's day and a new address, the ranges of
  starts that respect that against the visits already there.
- **Travel checked under concurrency by a day revision.** Travel depends on the pair of addresses, so it
  cannot be encoded in time keys alone without a conservative buffer (which is what wasted a visit a day).
  Each claim on a nurse's working day also takes the next *revision key* of that day
  (``nur_kim|2026-11-25|r7``), under the same kind of unique index, after reading the revision and the day's
  visits. Two claims that raced on the same nurse-day read the same revision, so only one can store its key;
  the other re-reads (now seeing the winner) and re-checks the travel. Revision keys are never released, so a
  stale reader can never slip in. Releasing a visit needs no revision: taking a visit out of a day only
  lengthens the gap around it (travel times obey the triangle inequality).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from chassis.clock import as_utc
from chassis.config import ConfigVersion

GRID = timedelta(minutes=5)
"""The key grid: fixed, never configured. Visit durations, travel and offered starts are whole cells of it."""


class VisitTypeSchema(Schema):
    name = fields.String(required=True)
    duration_minutes = fields.Integer(required=True, validate=validate.Range(min=15, max=12 * 60),
                                      metadata={"description": "the whole visit, recovery included"})
    infusion = fields.Boolean(load_default=True, metadata={"description": "an infusion (not a consultation)"})


class TravelSchema(Schema):
    speed_mph = fields.Float(required=True, validate=validate.Range(min=5, max=80))
    road_factor = fields.Float(load_default=1.3, validate=validate.Range(min=1, max=3))
    minimum_minutes = fields.Integer(required=True, validate=validate.Range(min=0, max=120))


class CalendarSchema(Schema):
    slot_minutes = fields.Integer(required=True, validate=validate.OneOf([5, 10, 15, 20, 30, 60]))
    minimum_notice_hours = fields.Integer(required=True, validate=validate.Range(min=0))
    maximum_days_ahead = fields.Integer(required=True, validate=validate.Range(min=1))
    maximum_search_days = fields.Integer(load_default=31, validate=validate.Range(min=1, max=92))
    earliest_start = fields.Time(required=True)
    latest_end = fields.Time(required=True)
    travel = fields.Nested(TravelSchema, required=True)
    visit_types = fields.Dict(keys=fields.String(validate=validate.Regexp(r"^[a-z0-9-]+$")),
                              values=fields.Nested(VisitTypeSchema), required=True)

    @validates_schema
    def _durations_fit_the_grid(self, data: dict[str, Any], **_: Any) -> None:
        grid = int(GRID.total_seconds() // 60)
        for code, visit_type in data["visit_types"].items():
            if visit_type["duration_minutes"] % grid:
                raise ValidationError(f"{code}: duration is not a whole number of {grid}-minute grid cells")
        if data["earliest_start"] >= data["latest_end"]:
            raise ValidationError("earliest_start must come before latest_end")


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
    """The visit's UTC window, or ``BookingRefused`` if the calendar does not allow that start.

    Starts are offered every ``slot_minutes`` on the patient's local clock; the visit, recovery included,
    starts no earlier than ``earliest_start`` and ends no later than ``latest_end`` of the same local day.
    """
    visit_types = calendar["visit_types"]
    if visit_type not in visit_types:
        raise BookingRefused("unknown_visit_type", f"no visit type {visit_type!r}")
    start_at = as_utc(start_at)
    zone = ZoneInfo(time_zone)
    local_start = start_at.astimezone(zone)
    minute_of_day = local_start.hour * 60 + local_start.minute
    if minute_of_day % calendar["slot_minutes"] or local_start.second or local_start.microsecond:
        raise BookingRefused("start_not_on_slot", f"visits start every {calendar['slot_minutes']} minutes")
    if start_at < now + timedelta(hours=calendar["minimum_notice_hours"]):
        raise BookingRefused("too_soon", f"book at least {calendar['minimum_notice_hours']} hours ahead")
    if start_at > now + timedelta(days=calendar["maximum_days_ahead"]):
        raise BookingRefused("too_far_ahead", f"book at most {calendar['maximum_days_ahead']} days ahead")
    end_at = start_at + timedelta(minutes=visit_types[visit_type]["duration_minutes"])
    earliest: time = calendar["earliest_start"]
    latest_end: time = calendar["latest_end"]
    if local_start.time() < earliest:
        raise BookingRefused("outside_visit_hours", f"visits start at {earliest:%H:%M} local time at the earliest")
    if end_at > local_moment(local_start.date(), latest_end, zone):
        raise BookingRefused("ends_too_late",
                             f"the visit, recovery included, must end by {latest_end:%H:%M} local time")
    return VisitWindow(start_at=start_at, end_at=end_at, local_start=local_start)


def local_moment(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time on a local date (the later one if the clock is ambiguous)."""
    return datetime.combine(day, clock, tzinfo=zone).astimezone(ZoneInfo("UTC"))


def offered_starts(calendar: ConfigVersion, visit_type: str, day: date, time_zone: str,
                   now: datetime) -> list[datetime]:
    """Every start the calendar allows on a local date of the patient, in order (none if the day is out of
    reach); each one is exactly a start ``visit_window`` accepts."""
    zone = ZoneInfo(time_zone)
    step = calendar["slot_minutes"]
    starts = []
    minute = 0
    while minute < 24 * 60:
        clock = time(minute // 60, minute % 60)
        minute += step
        start_at = local_moment(day, clock, zone)
        if start_at.astimezone(zone).time() != clock:
            continue  # a wall-clock time the spring change skips
        try:
            starts.append(visit_window(calendar, visit_type, start_at, time_zone, now).start_at)
        except BookingRefused:
            continue
    return sorted(set(starts))


def grid_cells(start_at: datetime, end_at: datetime) -> Iterator[datetime]:
    """The grid cells a span of time touches, from the cell holding its start."""
    start_at, end_at = as_utc(start_at), as_utc(end_at)
    cursor = start_at - (start_at - datetime(2000, 1, 1, tzinfo=start_at.tzinfo)) % GRID
    while cursor < end_at:
        yield cursor
        cursor += GRID


def slot_keys(owner_id: str, start_at: datetime, end_at: datetime) -> list[str]:
    """The keys of an owner's (nurse's or patient's) time a visit takes: one per grid cell, travel excluded."""
    return [f"{owner_id}|{cell:%Y-%m-%dT%H:%MZ}" for cell in grid_cells(start_at, end_at)]


def visit_keys(nurse_id: str, patient_id: str, start_at: datetime, end_at: datetime) -> list[str]:
    """What a visit claims: the nurse's time and the patient's time (so one patient never holds two
    overlapping visits, even with two nurses)."""
    return slot_keys(nurse_id, start_at, end_at) + slot_keys(patient_id, start_at, end_at)


def revision_key(nurse_id: str, work_day: date, revision: int) -> str:
    """The key that serialises claims on one nurse's working day (see the module's docstring)."""
    return f"{nurse_id}|{work_day.isoformat()}|r{revision:06d}"


# --- travel between home visits -------------------------------------------------------------------------

@dataclass(frozen=True)
class Stop:
    """A visit already in a nurse's day: when, and where the nurse will be."""

    start_at: datetime
    end_at: datetime
    location: tuple[float, float]


Travel = Callable[[tuple[float, float], tuple[float, float]], timedelta]


def open_gaps(shifts: list[tuple[datetime, datetime]], stops: list[Stop], home: tuple[float, float],
              location: tuple[float, float], duration: timedelta, travel: Travel) -> list[tuple[datetime, datetime]]:
    """The ranges ``(earliest, latest)`` of starts at which a visit of ``duration`` at ``location`` fits a
    nurse's day: inside a shift, after the previous visit's end plus the travel from its address (or the
    shift's start plus the travel from home base, for a shift's first visit), and ending early enough to
    travel on to the next visit in time. Both ends of each range are feasible starts."""
    ordered = sorted(stops, key=lambda stop: stop.start_at)
    gaps = []
    for shift_start, shift_end in shifts:
        for index in range(len(ordered) + 1):
            previous = ordered[index - 1] if index else None
            following = ordered[index] if index < len(ordered) else None
            earliest = shift_start
            if previous is not None:
                earliest = max(earliest, previous.end_at + travel(previous.location, location))
            if previous is None or previous.end_at <= shift_start:
                earliest = max(earliest, shift_start + travel(home, location))
            latest = shift_end - duration
            if following is not None:
                latest = min(latest, following.start_at - travel(location, following.location) - duration)
            if earliest <= latest:
                gaps.append((earliest, latest))
    return gaps


def fits(start_at: datetime, gaps: list[tuple[datetime, datetime]]) -> bool:
    return any(earliest <= start_at <= latest for earliest, latest in gaps)


def starts_in_gaps(starts: list[datetime], gaps: list[tuple[datetime, datetime]]) -> set[int]:
    """The positions in ``starts`` (sorted) of the starts that fit ``gaps``: what ``fits`` says of each start,
    found by bisection so that a day's gaps cost a few comparisons, not one per offered start."""
    found: set[int] = set()
    for earliest, latest in gaps:
        found.update(range(bisect_left(starts, earliest), bisect_right(starts, latest)))
    return found
