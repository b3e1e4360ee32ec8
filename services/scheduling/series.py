"""Treatment series as plain rules: the sessions a protocol plans, when the next one may be, and when a booster is
offered. A clinician's clearance names the protocol (intake's ``patient.cleared``); the sessions are the
patient's appointments that carry the series id, so nothing is counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema


class ProtocolSchema(Schema):
    name = fields.String(required=True)
    visit_type = fields.String(required=True)
    sessions = fields.Integer(required=True, validate=validate.Range(min=1, max=20))
    min_days_between = fields.Integer(required=True, validate=validate.Range(min=0, max=60))
    within_days = fields.Integer(required=True, validate=validate.Range(min=1, max=180),
                                 metadata={"description": "all sessions within this many days of the first"})
    booster_after_days = fields.List(fields.Integer(validate=validate.Range(min=1, max=365)), required=True,
                                     validate=validate.Length(equal=2))

    @validates_schema
    def _window(self, data: dict[str, Any], **_: Any) -> None:
        low, high = data["booster_after_days"]
        if low > high:
            raise ValidationError("booster_after_days is [earliest, latest]", "booster_after_days")


class ProtocolsSchema(Schema):
    default_protocol = fields.String(required=True)
    protocols = fields.Dict(keys=fields.String(validate=validate.Regexp(r"^[a-z0-9-]+$")),
                            values=fields.Nested(ProtocolSchema), required=True)

    @validates_schema
    def _default_exists(self, data: dict[str, Any], **_: Any) -> None:
        if data["default_protocol"] not in data["protocols"]:
            raise ValidationError("default_protocol must be one of the protocols", "default_protocol")


@dataclass(frozen=True)
class NextSession:
    kind: str          # "session" or "booster"
    number: int        # which session (1-based); boosters continue the count
    earliest: date
    latest: date


def next_session(protocol: dict[str, Any], planned_sessions: int, session_days: list[date],
                 today: date) -> NextSession:
    """When the next session may be: the first from tomorrow within the protocol's span; each next one at least
    ``min_days_between`` after the last and within ``within_days`` of the first; after the planned sessions, a
    booster ``booster_after_days`` after the last."""
    days = sorted(session_days)
    tomorrow = today + timedelta(days=1)
    if not days:
        return NextSession("session", 1, tomorrow, tomorrow + timedelta(days=protocol["within_days"] - 1))
    if len(days) < planned_sessions:
        earliest = max(days[-1] + timedelta(days=protocol["min_days_between"]), tomorrow)
        latest = days[0] + timedelta(days=protocol["within_days"] - 1)
        return NextSession("session", len(days) + 1, earliest, max(latest, earliest))
    low, high = protocol["booster_after_days"]
    return NextSession("booster", len(days) + 1, max(days[-1] + timedelta(days=low), tomorrow),
                       max(days[-1] + timedelta(days=high), tomorrow))


def fits_next_session(upcoming: NextSession, day: date) -> bool:
    return upcoming.earliest <= day <= upcoming.latest


class SessionOutsideWindow(Exception):
    """A requested session that the series' rules do not allow on that day."""

    def __init__(self, upcoming: NextSession, day: date) -> None:
        super().__init__(f"session {upcoming.number} is due between {upcoming.earliest} and {upcoming.latest}, "
                         f"not on {day}")
        self.upcoming, self.day = upcoming, day


def plan_sessions(protocol: dict[str, Any], planned_sessions: int, session_days: list[date],
                  requested_days: list[date], today: date) -> list[NextSession]:
    """The windows of several sessions booked at once, taken in date order, each counted as booked before the
    next is checked: booking them all at once obeys exactly the rules of booking them one by one. Raises
    ``SessionOutsideWindow`` for the first that does not fit."""
    days, planned = list(session_days), []
    for day in sorted(requested_days):
        upcoming = next_session(protocol, planned_sessions, days, today)
        if not fits_next_session(upcoming, day):
            raise SessionOutsideWindow(upcoming, day)
        planned.append(upcoming)
        days.append(day)
    return planned


def check_moved_session(protocol: dict[str, Any], planned_sessions: int, other_days: list[date],
                        new_day: date) -> None:
    """A session moved to ``new_day``: the series, with it on that day, must be one the rules allow when booked
    one by one in date order (so a move can neither crowd two sessions nor stretch the series past its span).
    Raises ``SessionOutsideWindow`` for the first session that would not fit."""
    days = sorted([*other_days, new_day])
    plan_sessions(protocol, planned_sessions, [], days, days[0] - timedelta(days=1))
