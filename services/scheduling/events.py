"""Events scheduling emits (payloads as in docs/events.md)."""

from marshmallow import Schema, fields, validate

from chassis.events import event_schema


@event_schema("appointment.booked", version=1)
class AppointmentBooked(Schema):
    appointment_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    nurse_id = fields.String(required=True)
    visit_type = fields.String(required=True)
    start_at = fields.AwareDateTime(required=True)
    end_at = fields.AwareDateTime(required=True)
    time_zone = fields.String(required=True)
    hold_id = fields.String()
    series_id = fields.String()
    quote_id = fields.String()


@event_schema("hold.placed", version=1)
class HoldPlaced(Schema):
    hold_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    nurse_id = fields.String(required=True)
    visit_type = fields.String(required=True)
    start_at = fields.AwareDateTime(required=True)
    end_at = fields.AwareDateTime(required=True)
    time_zone = fields.String(required=True)
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
class AppointmentRescheduled(Schema):
    appointment_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    nurse_id = fields.String(required=True)
    visit_type = fields.String(required=True)
    start_at = fields.AwareDateTime(required=True)
    end_at = fields.AwareDateTime(required=True)
    time_zone = fields.String(required=True)
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
