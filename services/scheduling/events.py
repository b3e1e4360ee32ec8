"""Events scheduling emits (payloads as in docs/events.md)."""

from marshmallow import Schema, fields

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
