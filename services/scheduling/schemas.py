"""What scheduling accepts and returns over RPC, and the fields it reads from others' events."""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from chassis.service import plausible_instant
from services.scheduling.roster import US_STATES, WEEKDAYS

_TIME_ZONES = frozenset(available_timezones())
_CLOCK = validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$", error="a local time HH:MM")
_ID = validate.Length(min=1, max=100)


class BookingRequestSchema(Schema):
    patient_id = fields.String(required=True, validate=_ID)
    visit_type = fields.String(required=True, validate=validate.Length(min=1, max=50))
    start_at = fields.AwareDateTime(required=True, validate=plausible_instant)
    nurse_id = fields.String(validate=_ID)
    series_id = fields.String(validate=_ID)


class HoldRequestSchema(BookingRequestSchema):
    """A hold also names the discounts the patient claims (veteran, first responder): billing's quote applies
    the best one its catalogue allows, and the deposit and the invoice follow that quote."""

    discount_codes = fields.List(fields.String(validate=validate.Length(min=1, max=64)), load_default=list,
                                 validate=validate.Length(max=5))


class SeriesBookingRequestSchema(Schema):
    """Several sessions of a series booked at once, all or nothing: one start each (in any order)."""

    start_ats = fields.List(fields.AwareDateTime(validate=plausible_instant), required=True,
                            validate=validate.Length(min=1, max=20))
    nurse_id = fields.String(validate=_ID)

    @validates_schema
    def _distinct(self, data: dict[str, Any], **_: Any) -> None:
        if len(set(data["start_ats"])) != len(data["start_ats"]):
            raise ValidationError("each session starts at a different time", "start_ats")


class RescheduleRequestSchema(Schema):
    start_at = fields.AwareDateTime(required=True, validate=plausible_instant)
    nurse_id = fields.String(validate=_ID)


class CancellationSchema(Schema):
    by = fields.String(required=True, validate=validate.OneOf(["patient", "clinic"]))
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class AvailabilityRequestSchema(Schema):
    patient_id = fields.String(required=True, validate=_ID)
    visit_type = fields.String(required=True, validate=validate.Length(min=1, max=50))
    from_ = fields.Date(required=True, data_key="from")
    to = fields.Date(required=True)
    nurse_id = fields.String(validate=_ID)

    @validates_schema
    def _in_order(self, data: dict[str, Any], **_: Any) -> None:
        if data["to"] < data["from_"]:
            raise ValidationError("must not come before from", "to")


class WaitlistRequestSchema(AvailabilityRequestSchema):
    """The same question as availability's, asked to wait for the answer: a patient, a visit type, local dates."""


class ShiftSchema(Schema):
    start = fields.String(required=True, validate=_CLOCK)
    end = fields.String(required=True, validate=_CLOCK)

    @validates_schema
    def _in_order(self, data: dict[str, Any], **_: Any) -> None:
        if data["end"] <= data["start"]:
            raise ValidationError("a shift ends after it starts", "end")


class ExceptionDaySchema(Schema):
    date = fields.Date(required=True)
    hours = fields.List(fields.Nested(ShiftSchema), required=True,
                        metadata={"description": "the hours worked that date: empty for a day off"})


class HoursSchema(Schema):
    weekly_hours = fields.Dict(keys=fields.String(validate=validate.OneOf(WEEKDAYS)),
                               values=fields.List(fields.Nested(ShiftSchema)), required=True,
                               metadata={"description": "local working hours by weekday (mon..sun)"})
    exceptions = fields.List(fields.Nested(ExceptionDaySchema), load_default=list)


class LicenceSchema(Schema):
    state = fields.String(required=True, validate=validate.OneOf(sorted(US_STATES), error="not a US state code"))
    number = fields.String(required=True, validate=validate.Length(min=1, max=40))
    expires_on = fields.Date(required=True)


class PlaceSchema(Schema):
    latitude = fields.Float(required=True, validate=validate.Range(min=-90, max=90))
    longitude = fields.Float(required=True, validate=validate.Range(min=-180, max=180))


class ServiceAreaSchema(Schema):
    radius_miles = fields.Float(validate=validate.Range(min=0.5, max=250))
    postal_codes = fields.List(fields.String(validate=validate.Regexp(r"^\d{5}$")), validate=validate.Length(max=500))

    @validates_schema
    def _some_area(self, data: dict[str, Any], **_: Any) -> None:
        if "radius_miles" not in data and not data.get("postal_codes"):
            raise ValidationError("give a travel radius or a list of ZIP codes")


class NurseSchema(HoursSchema):
    """A nurse of the roster, as given to ``add_nurse`` and stored (in JSON types)."""

    id = fields.String(attribute="_id", required=True, validate=validate.Regexp(r"^nur_[a-z0-9_]{1,60}$"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    active = fields.Boolean(load_default=True)
    time_zone = fields.String(required=True, validate=validate.OneOf(_TIME_ZONES, error="unknown IANA time zone"))
    licences = fields.List(fields.Nested(LicenceSchema), required=True, validate=validate.Length(min=1, max=60))
    home_base = fields.Nested(PlaceSchema, required=True)
    service_area = fields.Nested(ServiceAreaSchema, required=True)


def nurse_view(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored nurse as answered: the record, its id as ``id``, and the states of its licences."""
    nurse = {key: value for key, value in stored.items() if key != "_id"}
    return {"id": stored["_id"], **nurse,
            "licensed_states": sorted({licence["state"] for licence in stored["licences"]})}


class AppointmentSchema(Schema):
    id = fields.String(attribute="_id")
    patient_id = fields.String()
    nurse_id = fields.String()
    visit_type = fields.String()
    status = fields.String()
    start_at = fields.AwareDateTime()
    end_at = fields.AwareDateTime()
    time_zone = fields.String()
    local_start = fields.String()
    booked_at = fields.AwareDateTime()
    calendar_version = fields.String()
    hold_id = fields.String()
    series_id = fields.String()
    previous_start_at = fields.AwareDateTime()
    cancelled_at = fields.AwareDateTime()
    cancelled_by = fields.String()
    cancellation_reason = fields.String()
    notice_hours = fields.Float()


class HoldSchema(Schema):
    """A hold, as ``get_hold`` answers it (the contract in docs/events.md)."""

    id = fields.String(attribute="hold_id")
    patient_id = fields.String()
    nurse_id = fields.String()
    visit_type = fields.String()
    start_at = fields.AwareDateTime()
    end_at = fields.AwareDateTime()
    time_zone = fields.String()
    local_start = fields.String()
    status = fields.Method("_status")
    expires_at = fields.AwareDateTime()
    quote = fields.Dict()
    appointment_id = fields.Method("_appointment_id")
    failure_reason = fields.String()
    calendar_version = fields.String()

    @staticmethod
    def _status(hold: dict[str, Any]) -> str:
        return "booked" if hold.get("booked_at") else hold["status"]

    @staticmethod
    def _appointment_id(hold: dict[str, Any]) -> str | None:
        return hold["_id"] if hold.get("booked_at") else None


class DepositPaid(Schema):
    """billing's ``deposit.paid``: the fields scheduling reads."""

    class Meta:
        unknown = EXCLUDE

    hold_id = fields.String(required=True)
    patient_id = fields.String(required=True)


class ConsentRevoked(Schema):
    """intake's ``consent.revoked``: the fields scheduling reads."""

    class Meta:
        unknown = EXCLUDE

    patient_id = fields.String(required=True)
    consent_id = fields.String(required=True)


class VitalsSchema(Schema):
    systolic = fields.Float(required=True, metadata={"description": "mmHg"})
    diastolic = fields.Float(required=True, metadata={"description": "mmHg"})
    heart_rate = fields.Float(required=True, metadata={"description": "beats per minute"})
    spo2 = fields.Float(required=True, metadata={"description": "oxygen saturation, %"})
    taken_at = fields.AwareDateTime(validate=plausible_instant)


class PreChecksSchema(Schema):
    fasting_hours = fields.Float(required=True, validate=validate.Range(min=0, max=72))
    escort_present = fields.Boolean(required=True)
    consent_reconfirmed = fields.Boolean(required=True)
    pregnancy_possible = fields.Boolean(required=True, allow_none=True,
                                        metadata={"description": "null when the question was not answered"})
    weight_kg = fields.Float(required=True, validate=validate.Range(min=20, max=400))
    baseline = fields.Nested(VitalsSchema, required=True)


STEP_FIELDS = {"en_route": ("arrival_from", "arrival_to"), "pre_checks": ("pre_checks",),
               "completed": ("infusion_minutes",), "discharged": ("escort_present", "post_care_instructions_given"),
               "aborted": ("reason",)}


class VisitStepSchema(Schema):
    step = fields.String(required=True, validate=validate.OneOf(
        ["en_route", "arrived", "pre_checks", "started", "completed", "discharged", "aborted", "no_show"]))
    arrival_from = fields.AwareDateTime(validate=plausible_instant)
    arrival_to = fields.AwareDateTime(validate=plausible_instant)
    patient_late_minutes = fields.Integer(validate=validate.Range(min=0, max=600))
    pre_checks = fields.Nested(PreChecksSchema)
    infusion_minutes = fields.Integer(validate=validate.Range(min=1, max=720))
    escort_present = fields.Boolean()
    post_care_instructions_given = fields.Boolean()
    reason = fields.String(validate=validate.Regexp(r"^[a-z_]{1,50}$"))
    note = fields.String(validate=validate.Length(max=1000))

    @validates_schema
    def _what_the_step_needs(self, data: dict[str, Any], **_: Any) -> None:
        missing = [name for name in STEP_FIELDS.get(data["step"], ()) if name not in data]
        if missing:
            raise ValidationError({name: [f"required for the {data['step']} step"] for name in missing})


class MedicationEntrySchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(["drawn", "given", "wasted", "correction"]))
    substance = fields.String(load_default="ketamine", validate=validate.Length(min=1, max=50))
    lot_number = fields.String(required=True, validate=validate.Length(min=1, max=50))
    amount_mg = fields.Decimal(required=True, places=3, as_string=True,
                               validate=validate.Range(min=0, max=5000, min_inclusive=False))
    witness = fields.String(validate=validate.Length(min=1, max=200))
    corrects_entry_id = fields.String(validate=_ID)
    note = fields.String(validate=validate.Length(max=1000))

    @validates_schema
    def _witnessed_and_linked(self, data: dict[str, Any], **_: Any) -> None:
        if data["kind"] == "wasted" and not data.get("witness"):
            raise ValidationError("a waste needs a witness", "witness")
        if data["kind"] == "correction" and not data.get("corrects_entry_id"):
            raise ValidationError("a correction names the entry it corrects", "corrects_entry_id")


class LogRangeSchema(Schema):
    from_ = fields.Date(required=True, data_key="from")
    to = fields.Date(required=True)

    @validates_schema
    def _in_order(self, data: dict[str, Any], **_: Any) -> None:
        if data["to"] < data["from_"] or (data["to"] - data["from_"]).days > 366:
            raise ValidationError("must be on or after from, at most a year later", "to")


class PatientCleared(Schema):
    """intake's ``patient.cleared``: the fields scheduling reads."""

    class Meta:
        unknown = EXCLUDE

    patient_id = fields.String(required=True)
    review_id = fields.String(required=True)
    protocol_code = fields.String(required=True)
    planned_sessions = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=20))
