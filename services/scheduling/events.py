"""Events scheduling emits (payloads as in docs/events.md)."""

from marshmallow import Schema, fields, validate

from chassis.events import event_schema


class _VisitTime(Schema):
    """Who, which visit and when: what a hold and an appointment's events share."""

    patient_id = fields.String(required=True)
    nurse_id = fields.String(required=True)
    visit_type = fields.String(required=True)
    start_at = fields.AwareDateTime(required=True)
    end_at = fields.AwareDateTime(required=True)
    time_zone = fields.String(required=True)


@event_schema("appointment.booked", version=1)
class AppointmentBooked(_VisitTime):
    appointment_id = fields.String(required=True)
    postal_code = fields.String(metadata={"description": "where the visit is: billing's travel zone"})
    hold_id = fields.String()
    series_id = fields.String()
    quote_id = fields.String()


@event_schema("hold.placed", version=1)
class HoldPlaced(_VisitTime):
    hold_id = fields.String(required=True)
    expires_at = fields.AwareDateTime(required=True)
    quote_id = fields.String(required=True)
    deposit_cents = fields.Integer(required=True)
    currency = fields.String(required=True)


@event_schema("hold.expired", version=1)
class HoldExpired(Schema):
    hold_id = fields.String(required=True)
    patient_id = fields.String(required=True)


@event_schema("booking.failed", version=1)
class BookingFailed(Schema):
    hold_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    reason = fields.String(required=True)


@event_schema("appointment.rescheduled", version=1)
class AppointmentRescheduled(_VisitTime):
    appointment_id = fields.String(required=True)
    previous_start_at = fields.AwareDateTime(required=True)


@event_schema("appointment.cancelled", version=1)
class AppointmentCancelled(Schema):
    appointment_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    visit_type = fields.String(required=True)
    start_at = fields.AwareDateTime(required=True)
    time_zone = fields.String(required=True)
    by = fields.String(required=True, validate=validate.OneOf(["patient", "clinic"]))
    notice_hours = fields.Float(required=True)
    reason = fields.String(required=True)


@event_schema("appointment.no_show", version=1)
class AppointmentNoShow(Schema):
    appointment_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    visit_type = fields.String(required=True)
    start_at = fields.AwareDateTime(required=True)


class _VisitFact(Schema):
    appointment_id = fields.String(required=True)
    patient_id = fields.String(required=True)


@event_schema("visit.en_route", version=1)
class VisitEnRoute(_VisitFact):
    nurse_id = fields.String(required=True)
    time_zone = fields.String(required=True)
    arrival_from = fields.AwareDateTime(required=True)
    arrival_to = fields.AwareDateTime(required=True)


@event_schema("visit.arrived", version=1)
class VisitArrived(_VisitFact):
    pass


@event_schema("visit.pre_checked", version=1)
class VisitPreChecked(_VisitFact):
    """The pre-dose checks passed (no values: they stay in the visit record)."""


@event_schema("visit.started", version=1)
class VisitStarted(_VisitFact):
    pass


@event_schema("visit.aborted", version=1)
class VisitAborted(_VisitFact):
    visit_type = fields.String(required=True)
    reason = fields.String(required=True)
    chargeable = fields.Boolean(required=True)


@event_schema("visit.completed", version=1)
class VisitCompleted(_VisitFact):
    visit_type = fields.String(required=True)
    infusion_minutes = fields.Integer(required=True)
    completed_at = fields.AwareDateTime(required=True)


@event_schema("visit.discharged", version=1)
class VisitDischarged(_VisitFact):
    visit_type = fields.String(required=True)
    time_zone = fields.String(required=True)
    discharged_at = fields.AwareDateTime(required=True)


@event_schema("waitlist.offered", version=1)
class WaitlistOffered(Schema):
    waitlist_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    hold_id = fields.String(required=True)
    start_at = fields.AwareDateTime(required=True)
    time_zone = fields.String(required=True)
    expires_at = fields.AwareDateTime(required=True)
