"""Notification rules as plain functions: what each message says and to whom, by which channels, when
(quiet hours and reminders in the patient's time zone, DST included), and how often a failed send is retried."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from chassis.config import ConfigVersion

CHANNELS = ("email", "sms")
SAFETY = "safety"
# The message kinds whose events carry the visit's id, start and end: those ``calendar: true`` can attach it to.
VISIT_TIME_KINDS = frozenset({"appointment.booked", "appointment.rescheduled"})


# --- the configuration (config/messages.yml) -----------------------------------------------------------

def _clock(value: str) -> None:
    try:
        time.fromisoformat(value)
    except ValueError as exc:
        raise ValidationError("must be a local time HH:MM") from exc


class KindSchema(Schema):
    audience = fields.String(load_default="patient", validate=validate.OneOf(["patient", "staff"]))
    category = fields.String(required=True)
    channels = fields.List(fields.String(validate=validate.OneOf(CHANNELS)), required=True,
                           validate=validate.Length(min=1))
    urgent = fields.Boolean(load_default=False)
    calendar = fields.Boolean(load_default=False)


class ClinicSchema(Schema):
    name = fields.String(required=True)
    phone = fields.String(required=True)
    emergency_number = fields.String(required=True)


class QuietHoursSchema(Schema):
    start = fields.String(required=True, validate=_clock)
    end = fields.String(required=True, validate=_clock)


class ReminderSchema(Schema):
    tolerance_minutes = fields.Integer(required=True, validate=validate.Range(min=0))
    hours_before = fields.Float(validate=validate.Range(min=0))
    local_time = fields.String(validate=_clock)


class VisitTypeSchema(Schema):
    fasting_hours = fields.Float(required=True, validate=validate.Range(min=0, max=24))
    no_driving_hours = fields.Float(required=True, validate=validate.Range(min=0, max=72))


class MessageCatalogueSchema(Schema):
    forbidden_words = fields.List(fields.String(), required=True)
    clinic = fields.Nested(ClinicSchema, required=True)
    quiet_hours = fields.Nested(QuietHoursSchema, required=True)
    categories = fields.List(fields.String(), required=True)
    reminders = fields.Dict(keys=fields.String(validate=validate.OneOf(["day_before", "fasting", "after_care",
                                                                         "check_in"])),
                            values=fields.Nested(ReminderSchema), required=True)
    visit_types = fields.Dict(keys=fields.String(), values=fields.Nested(VisitTypeSchema), required=True)
    default_visit_type = fields.Nested(VisitTypeSchema, required=True)
    kinds = fields.Dict(keys=fields.String(), values=fields.Nested(KindSchema), required=True)

    @validates_schema
    def _categories_known(self, data: dict[str, Any], **kwargs: Any) -> None:
        known = {*data.get("categories", []), SAFETY}
        unknown = {kind: s["category"] for kind, s in data.get("kinds", {}).items() if s["category"] not in known}
        if unknown:
            raise ValidationError(f"unknown categories {unknown}; known: {sorted(known)}", "kinds")

    @validates_schema
    def _calendars_possible(self, data: dict[str, Any], **kwargs: Any) -> None:
        impossible = sorted(kind for kind, s in data.get("kinds", {}).items()
                            if s["calendar"] and kind not in VISIT_TIME_KINDS)
        if impossible:
            raise ValidationError(f"calendar: true on {impossible}, whose events carry no visit time; only "
                                  f"{sorted(VISIT_TIME_KINDS)} can carry the visit's calendar file", "kinds")


# --- how values read ---------------------------------------------------------------------------------

def local_time(moment: datetime, time_zone: str) -> str:
    """``Tuesday, November 24 at 10:00 AM EST``: the instant as the patient reads it, DST included."""
    local = moment.astimezone(ZoneInfo(time_zone))
    return f"{local:%A, %B} {local.day} at {clock_time(moment, time_zone)}"


def clock_time(moment: datetime, time_zone: str) -> str:
    """``9:05 AM MST``."""
    local = moment.astimezone(ZoneInfo(time_zone))
    return f"{local:%I:%M %p %Z}".lstrip("0")


def local_date(moment: datetime, time_zone: str) -> str:
    local = moment.astimezone(ZoneInfo(time_zone))
    return f"{local:%B} {local.day}, {local.year}"


def money(amount_cents: int, currency: str) -> str:
    symbol = "$" if currency.lower() == "usd" else f"{currency.upper()} "
    return f"{symbol}{amount_cents // 100:,}.{amount_cents % 100:02d}"


def visit_rules(catalogue: ConfigVersion, visit_type: str | None) -> dict[str, float]:
    return catalogue["visit_types"].get(visit_type or "", catalogue["default_visit_type"])


def _hours(value: float) -> str:
    return f"{value:g}"


# What each message kind is told, from the event's payload (or the reminder's appointment) and the patient's
# time zone. ``check_templates`` renders every template with these, fed the sample payloads below.
ValueMaker = Callable[[dict[str, Any], str, ConfigVersion], dict[str, Any]]


def _amount(p: dict[str, Any], tz: str, c: ConfigVersion) -> dict[str, Any]:
    return {"amount": money(p["amount_cents"], p["currency"])}


def _visit(p: dict[str, Any], tz: str, c: ConfigVersion) -> dict[str, Any]:
    return {"local_time": local_time(p["start_at"], tz)}


MESSAGE_VALUES: dict[str, ValueMaker] = {
    "patient.registered": lambda p, tz, c: {},
    "screening.submitted": lambda p, tz, c: {},
    "patient.cleared": lambda p, tz, c: {"planned_sessions": p.get("planned_sessions")},
    "patient.declined": lambda p, tz, c: {},
    "review.urgent": lambda p, tz, c: {"first_name": "on-call team", "patient_id": p["patient_id"],
                                       "review_id": p["review_id"], "clinician_id": p.get("clinician_id")},
    "hold.placed": lambda p, tz, c: {**_visit(p, tz, c), "expires_time": clock_time(p["expires_at"], tz),
                                     "deposit": money(p["deposit_cents"], p["currency"])},
    "deposit.paid": _amount,
    "appointment.booked": _visit,
    "appointment.rescheduled": lambda p, tz, c: {**_visit(p, tz, c),
                                                 "previous_local_time": local_time(p["previous_start_at"], tz)},
    "appointment.cancelled": lambda p, tz, c: {**_visit(p, tz, c), "by_clinic": p.get("by") == "clinic"},
    "booking.failed": lambda p, tz, c: {"time_taken": str(p.get("reason", "")).startswith("hold_lapsed")},
    "waitlist.offered": lambda p, tz, c: {**_visit(p, tz, c), "expires_time": local_time(p["expires_at"], tz)},
    "visit.en_route": lambda p, tz, c: {"arrival_from": clock_time(p["arrival_from"], tz),
                                        "arrival_to": clock_time(p["arrival_to"], tz)},
    "invoice.created": lambda p, tz, c: {"amount": money(p["total_cents"], p["currency"]),
                                         "local_date": local_date(p["visit_start_at"], tz)},
    "payment.succeeded": _amount,
    "payment.failed": _amount,
    "refund.issued": _amount,
    "fee.charged": _amount,
    "reminder.day_before": _visit,
    "reminder.fasting": lambda p, tz, c: {
        **_visit(p, tz, c), "fasting_hours": _hours(visit_rules(c, p.get("visit_type"))["fasting_hours"]),
        "fasting_from": local_time(p["start_at"] - timedelta(hours=visit_rules(c, p.get("visit_type"))[
            "fasting_hours"]), tz)},
    "reminder.after_care": lambda p, tz, c: {
        "no_driving_hours": _hours(visit_rules(c, p.get("visit_type"))["no_driving_hours"])},
    "reminder.check_in": lambda p, tz, c: {},
}

_START = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
_MONEY = {"amount_cents": 60000, "currency": "usd"}
SAMPLE_PAYLOADS: dict[str, dict[str, Any]] = {
    "patient.registered": {}, "screening.submitted": {}, "patient.cleared": {"planned_sessions": 6},
    "patient.declined": {}, "booking.failed": {"reason": "hold_lapsed_and_slot_taken"}, "reminder.check_in": {},
    "review.urgent": {"patient_id": "pat_sample", "review_id": "rev_sample", "clinician_id": "cln_sample"},
    "hold.placed": {"start_at": _START, "expires_at": _START - timedelta(days=2), "deposit_cents": 10000,
                    "currency": "usd"},
    "deposit.paid": _MONEY, "payment.succeeded": _MONEY, "payment.failed": _MONEY, "refund.issued": _MONEY,
    "fee.charged": _MONEY,
    "appointment.booked": {"start_at": _START},
    "appointment.rescheduled": {"start_at": _START, "previous_start_at": _START - timedelta(days=1)},
    "appointment.cancelled": {"start_at": _START, "by": "clinic"},
    "waitlist.offered": {"start_at": _START, "expires_at": _START - timedelta(days=1)},
    "visit.en_route": {"arrival_from": _START, "arrival_to": _START + timedelta(minutes=30)},
    "invoice.created": {"total_cents": 60000, "currency": "usd", "visit_start_at": _START},
    "reminder.day_before": {"start_at": _START, "visit_type": "iv-mood"},
    "reminder.fasting": {"start_at": _START, "visit_type": "iv-mood"},
    "reminder.after_care": {"visit_type": "iv-mood"},
}
SAMPLE_TIME_ZONE = "America/Denver"


def message_values(catalogue: ConfigVersion, kind: str, payload: dict[str, Any], time_zone: str,
                   first_name: str) -> dict[str, Any]:
    return {"first_name": first_name, **MESSAGE_VALUES[kind](payload, time_zone, catalogue)}


def sample_values(catalogue: ConfigVersion) -> dict[str, dict[str, Any]]:
    """The values each kind is rendered with when the templates are checked at start-up."""
    return {kind: message_values(catalogue, kind, payload, SAMPLE_TIME_ZONE, "Ana")
            for kind, payload in SAMPLE_PAYLOADS.items()}


# --- to whom, by which channels -------------------------------------------------------------------------

def patient_channels(catalogue: ConfigVersion, kind: str, contact: dict[str, Any]) -> list[tuple[str, str]]:
    """The (channel, address) pairs a patient receives a message kind on.

    SMS only with consent to texts and no STOP since; a channel the patient switched off for the kind's
    category is skipped. Safety messages ignore the switches, and go by email when no text may be sent.
    """
    settings = catalogue["kinds"][kind]
    category = settings["category"]
    switched = contact.get("preferences") or {}
    may_text = bool(contact.get("sms_opt_in")) and not contact.get("sms_stopped") and bool(contact.get("phone"))
    chosen = []
    for channel in settings["channels"]:
        if channel == "sms" and not may_text:
            continue
        switches = switched.get(channel, {})
        if category != SAFETY and False in (switches.get(category), switches.get(kind)):
            continue
        chosen.append(channel)
    if category == SAFETY and "email" not in chosen and contact.get("email"):
        chosen.append("email")
    return [(channel, contact["phone"] if channel == "sms" else contact["email"]) for channel in chosen]


def preference_key(name: str) -> str:
    """How a category or a message kind is stored as a key (a store path cannot hold its dots)."""
    return name.replace(".", "|")


def preference_name(key: str) -> str:
    return key.replace("|", ".")


def preference_errors(catalogue: ConfigVersion, preferences: dict[str, Any]) -> dict[str, list[str]]:
    """Field errors of a preferences document ``{"email": {"billing": false}, "sms": {"reminder.fasting": false}}``:
    a key is a category (every kind in it) or one message kind."""
    errors: dict[str, list[str]] = {}
    categories = catalogue["categories"]
    kinds = {kind: settings["category"] for kind, settings in catalogue["kinds"].items()
             if settings["audience"] == "patient"}
    for channel, switches in preferences.items():
        if channel not in CHANNELS:
            errors[channel] = [f"Unknown channel; use one of {list(CHANNELS)}."]
            continue
        if not isinstance(switches, dict):
            errors[channel] = ["Must be an object of category: true or false."]
            continue
        for category, value in switches.items():
            field = f"{channel}.{category}"
            if SAFETY in (category, kinds.get(category)):
                errors[field] = ["Safety messages cannot be switched off."]
            elif category not in categories and category not in kinds:
                errors[field] = [f"Unknown category or message kind; categories: {categories}."]
            elif not isinstance(value, bool):
                errors[field] = ["Must be true or false."]
    return errors


# --- when: quiet hours and reminders ---------------------------------------------------------------------

def _quiet(catalogue: ConfigVersion) -> tuple[time, time]:
    hours = catalogue["quiet_hours"]
    return time.fromisoformat(hours["start"]), time.fromisoformat(hours["end"])


def in_quiet_hours(catalogue: ConfigVersion, moment: datetime, time_zone: str) -> bool:
    start, end = _quiet(catalogue)
    now = moment.astimezone(ZoneInfo(time_zone)).time()
    return (now >= start or now < end) if start > end else start <= now < end


def _at_local(day: date, clock: time, time_zone: str) -> datetime:
    return datetime.combine(day, clock, tzinfo=ZoneInfo(time_zone)).astimezone(UTC)


def after_quiet_hours(catalogue: ConfigVersion, moment: datetime, time_zone: str) -> datetime:
    """``moment``, or when it falls in the patient's quiet hours, the morning they end (local, DST-aware)."""
    if not in_quiet_hours(catalogue, moment, time_zone):
        return moment
    start, end = _quiet(catalogue)
    local = moment.astimezone(ZoneInfo(time_zone))
    day = local.date() + timedelta(days=1) if start > end and local.time() >= start else local.date()
    return _at_local(day, end, time_zone)


def before_quiet_hours(catalogue: ConfigVersion, moment: datetime, time_zone: str) -> datetime:
    """``moment``, or when it falls in quiet hours, the last minute before they began (the evening before)."""
    if not in_quiet_hours(catalogue, moment, time_zone):
        return moment
    start, end = _quiet(catalogue)
    local = moment.astimezone(ZoneInfo(time_zone))
    day = local.date() - timedelta(days=1) if start > end and local.time() < end else local.date()
    return _at_local(day, start, time_zone) - timedelta(minutes=1)


@dataclass(frozen=True)
class PlannedReminder:
    kind: str  # "reminder.day_before", ...
    due_at: datetime
    tolerance: timedelta


def _tolerance(catalogue: ConfigVersion, name: str) -> timedelta:
    return timedelta(minutes=catalogue["reminders"][name]["tolerance_minutes"])


def plan_visit_reminders(catalogue: ConfigVersion, start_at: datetime, visit_type: str | None,
                         time_zone: str) -> list[PlannedReminder]:
    """Before a visit: the day-before reminder and, for visit types that need it, the fasting reminder;
    either, when it would fall in quiet hours, the evening before instead."""
    reminders = catalogue["reminders"]
    planned = []
    if "day_before" in reminders:
        due = start_at - timedelta(hours=reminders["day_before"]["hours_before"])
        planned.append(PlannedReminder("reminder.day_before", before_quiet_hours(catalogue, due, time_zone),
                                       _tolerance(catalogue, "day_before")))
    fasting_hours = visit_rules(catalogue, visit_type)["fasting_hours"]
    if "fasting" in reminders and fasting_hours > 0:
        due = start_at - timedelta(hours=fasting_hours)
        planned.append(PlannedReminder("reminder.fasting", before_quiet_hours(catalogue, due, time_zone),
                                       _tolerance(catalogue, "fasting")))
    return planned


def plan_after_care(catalogue: ConfigVersion, discharged_at: datetime, time_zone: str) -> list[PlannedReminder]:
    """After discharge: the safety message at once, and a check-in the next local day (DST-aware)."""
    reminders = catalogue["reminders"]
    planned = []
    if "after_care" in reminders:
        planned.append(PlannedReminder("reminder.after_care", discharged_at, _tolerance(catalogue, "after_care")))
    if "check_in" in reminders:
        next_day = discharged_at.astimezone(ZoneInfo(time_zone)).date() + timedelta(days=1)
        due = _at_local(next_day, time.fromisoformat(reminders["check_in"]["local_time"]), time_zone)
        planned.append(PlannedReminder("reminder.check_in", after_quiet_hours(catalogue, due, time_zone),
                                       _tolerance(catalogue, "check_in")))
    return planned


def too_late(due_at: datetime, tolerance: timedelta, now: datetime) -> bool:
    """A reminder whose moment passed by more than its tolerance is skipped, not sent late."""
    return expired(due_at + tolerance, now)


def expired(expires_at: datetime | None, now: datetime) -> bool:
    """A message past its expiry is no longer of use: it is recorded as skipped, never sent."""
    return expires_at is not None and now > expires_at


@dataclass(frozen=True)
class Timing:
    """When a recorded message may go (``not_before``) and after when it must not (``expires_at``, or never)."""

    not_before: datetime
    expires_at: datetime | None = None


def reminder_timing(due_at: datetime, tolerance: timedelta, now: datetime) -> Timing:
    """A fired reminder's messages go at once and expire at its moment plus its tolerance.

    Quiet hours do not hold them: a reminder is planned for a precise moment that already keeps out of the
    patient's quiet hours (the day-before and fasting reminders move to the evening before they start, the
    check-in to the morning they end, the after-care message is urgent). One fired late, within its tolerance,
    may therefore go a few minutes into quiet hours; held until the morning it would arrive after the moment it
    was for (a fasting reminder after the fast began). Whatever keeps it from going by ``due_at + tolerance``
    (a channel down, retries) skips it, recorded, rather than sending it late."""
    return Timing(now, due_at + tolerance)


def message_timing(catalogue: ConfigVersion, kind: str, now: datetime, time_zone: str, quiet_hours: bool = True,
                   expires_at: datetime | None = None) -> Timing:
    """When a message an event causes may go: after the patient's quiet hours unless urgent (or quiet hours are
    off, for demonstrations); ``expires_at`` when the event says until when it is of use (a hold, an offer, the
    nurse's arrival window)."""
    return Timing(send_at(catalogue, kind, now, time_zone) if quiet_hours else now, expires_at)


def carries_calendar(catalogue: ConfigVersion, kind: str) -> bool:
    """Whether the kind's email carries the visit as a calendar file (``calendar: true`` in the catalogue)."""
    return bool(catalogue["kinds"][kind]["calendar"])


def send_at(catalogue: ConfigVersion, kind: str, now: datetime, time_zone: str) -> datetime:
    """When a message made now may go: at once if urgent, else after the patient's quiet hours."""
    if catalogue["kinds"][kind]["urgent"]:
        return now
    return after_quiet_hours(catalogue, now, time_zone)


@dataclass(frozen=True)
class RetryPolicy:
    """How a channel that failed is retried (settings ``DELIVERY_*``): doubling waits, capped, then given up."""

    max_attempts: int = 5
    first_retry_seconds: float = 30.0
    longest_retry_seconds: float = 1800.0

    def delay(self, attempt: int) -> timedelta | None:
        """The wait before the next try after ``attempt`` failed ones, or None: the delivery has failed."""
        if attempt >= self.max_attempts:
            return None
        return timedelta(seconds=min(self.longest_retry_seconds, self.first_retry_seconds * 2 ** (attempt - 1)))
