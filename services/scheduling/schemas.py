"""What scheduling accepts and returns over RPC."""

from marshmallow import Schema, fields, validate

from chassis.service import plausible_instant


class BookingRequestSchema(Schema):
    patient_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    visit_type = fields.String(required=True, validate=validate.Length(min=1, max=50))
    start_at = fields.AwareDateTime(required=True, validate=plausible_instant)
    nurse_id = fields.String(validate=validate.Length(min=1, max=100))


class NurseSchema(Schema):
    id = fields.String(attribute="_id", required=True, validate=validate.Regexp(r"^nur_[a-z0-9_]{1,60}$"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    licensed_states = fields.List(fields.String(validate=validate.Regexp(r"^[A-Z]{2}$")), required=True,
                                  validate=validate.Length(min=1))
    active = fields.Boolean(load_default=True)


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
