"""Events scheduling emits."""

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
