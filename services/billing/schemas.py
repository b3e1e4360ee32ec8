"""What billing returns over RPC, and what it reads from other services' events."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema


class AppointmentBooked(Schema):
    """The fields of ``appointment.booked`` (scheduling) that billing needs."""

    appointment_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    visit_type = fields.String(required=True)
    start_at = fields.AwareDateTime(required=True)
    hold_id = fields.String(load_default=None)
    quote_id = fields.String(load_default=None)


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
    discount_cents = fields.Integer()
    total_cents = fields.Integer()
    deposit_cents = fields.Integer()
    amount_due_cents = fields.Integer()
    quote_id = fields.String(allow_none=True)
    catalogue_version = fields.String()
    visit_start_at = fields.AwareDateTime()
    created_at = fields.AwareDateTime()


class QuoteRequestSchema(Schema):
    """``quote(request)``: a visit type for a patient; with ``hold_id`` (and the hold's ``expires_at``) billing
    keeps the answer as the hold's quote, the one its deposit charges."""

    patient_id = fields.String(load_default=None)
    visit_type = fields.String(required=True, validate=validate.Length(min=1, max=64))
    hold_id = fields.String(load_default=None, validate=validate.Length(min=1, max=128))
    start_at = fields.AwareDateTime(load_default=None)
    expires_at = fields.AwareDateTime(load_default=None)
    discount_codes = fields.List(fields.String(validate=validate.Length(min=1, max=64)),
                                 load_default=list, validate=validate.Length(max=5))
    postal_code = fields.String(load_default=None, validate=validate.Regexp(r"^\d{5}(-\d{4})?$"))

    @validates_schema
    def _a_hold_names_its_patient_and_expiry(self, data: dict, **_: object) -> None:
        if data.get("hold_id") is not None:
            missing = {name: ["required with hold_id"] for name in ("patient_id", "expires_at")
                       if data.get(name) is None}
            if missing:
                raise ValidationError(missing)


class QuoteSchema(Schema):
    quote_id = fields.String()
    hold_id = fields.String(allow_none=True)
    patient_id = fields.String(allow_none=True)
    visit_type = fields.String(allow_none=True)
    package = fields.String(allow_none=True)
    currency = fields.String()
    lines = fields.List(fields.Nested(LineItemSchema))
    discount_cents = fields.Integer()
    discount_code = fields.String(allow_none=True)
    total_cents = fields.Integer()
    deposit_cents = fields.Integer()
    balance_cents = fields.Integer()
    travel_zone = fields.String(allow_none=True)
    cancellation_policy = fields.String()
    catalogue_version = fields.String()
    fee_policy_version = fields.String(allow_none=True)
    expires_at = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime()
