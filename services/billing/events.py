"""Events billing emits."""

from marshmallow import Schema, fields

from chassis.events import event_schema


@event_schema("invoice.created", version=1)
class InvoiceCreated(Schema):
    invoice_id = fields.String(required=True)
    appointment_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    currency = fields.String(required=True)
    total_cents = fields.Integer(required=True)
    visit_start_at = fields.AwareDateTime(required=True)
