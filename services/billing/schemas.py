"""What billing returns over RPC, and what it reads from other services' events."""

from marshmallow import Schema, fields


class AppointmentBooked(Schema):
    """The fields of ``appointment.booked`` (scheduling) that billing needs."""

    appointment_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    visit_type = fields.String(required=True)
    start_at = fields.AwareDateTime(required=True)


class LineItemSchema(Schema):
    code = fields.String()
    description = fields.String()
    quantity = fields.Integer()
    unit_amount_cents = fields.Integer()
    amount_cents = fields.Integer()


class InvoiceSchema(Schema):
    id = fields.String(attribute="_id")
    appointment_id = fields.String()
    patient_id = fields.String()
    status = fields.String()
    currency = fields.String()
    line_items = fields.List(fields.Nested(LineItemSchema))
    total_cents = fields.Integer()
    amount_due_cents = fields.Integer()
    catalogue_version = fields.String()
    visit_start_at = fields.AwareDateTime()
    created_at = fields.AwareDateTime()
