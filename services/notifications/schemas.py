"""What notifications reads from other services' events, and what it returns over RPC."""

from marshmallow import Schema, fields


class PatientRegistered(Schema):
    patient_id = fields.String(required=True)
    first_name = fields.String(required=True)
    email = fields.String(required=True)
    phone = fields.String(required=True)
    time_zone = fields.String(required=True)
    sms_opt_in = fields.Boolean(required=True)


class AppointmentBooked(Schema):
    appointment_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    start_at = fields.AwareDateTime(required=True)
    time_zone = fields.String(required=True)


class InvoiceCreated(Schema):
    invoice_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    currency = fields.String(required=True)
    total_cents = fields.Integer(required=True)
    visit_start_at = fields.AwareDateTime(required=True)


class MessageSchema(Schema):
    id = fields.String(attribute="_id")
    patient_id = fields.String()
    kind = fields.String()
    channel = fields.String()
    to = fields.String()
    subject = fields.String(allow_none=True)
    body = fields.String()
    status = fields.String()
    created_at = fields.AwareDateTime()
    templates_version = fields.String()
