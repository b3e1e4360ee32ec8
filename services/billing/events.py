"""Events billing emits (docs/events.md)."""

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


@event_schema("deposit.paid", version=1)
class DepositPaid(Schema):
    hold_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    payment_intent_id = fields.String(required=True)
    amount_cents = fields.Integer(required=True)
    currency = fields.String(required=True)


@event_schema("payment.succeeded", version=1)
class PaymentSucceeded(Schema):
    patient_id = fields.String(required=True)
    invoice_id = fields.String(required=True, allow_none=True)
    appointment_id = fields.String(required=True, allow_none=True)
    payment_intent_id = fields.String(required=True)
    amount_cents = fields.Integer(required=True)
    currency = fields.String(required=True)
    kind = fields.String(required=True)


@event_schema("payment.failed", version=1)
class PaymentFailed(Schema):
    patient_id = fields.String(required=True)
    invoice_id = fields.String(required=True, allow_none=True)
    appointment_id = fields.String(required=True, allow_none=True)
    amount_cents = fields.Integer(required=True)
    currency = fields.String(required=True)
    reason_code = fields.String(required=True)


@event_schema("refund.issued", version=1)
class RefundIssued(Schema):
    refund_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    invoice_id = fields.String(required=True, allow_none=True)
    hold_id = fields.String(required=True, allow_none=True)
    purchase_id = fields.String(allow_none=True, load_default=None)  # a package's unused visits refunded
    amount_cents = fields.Integer(required=True)
    currency = fields.String(required=True)
    reason = fields.String(required=True)


@event_schema("fee.charged", version=1)
class FeeCharged(Schema):
    fee_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    appointment_id = fields.String(required=True)
    invoice_id = fields.String(required=True)
    amount_cents = fields.Integer(required=True)
    currency = fields.String(required=True)
    reason = fields.String(required=True)


@event_schema("invoice.settled", version=1)
class InvoiceSettled(Schema):
    invoice_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    appointment_id = fields.String(required=True)
