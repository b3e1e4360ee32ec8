"""What billing returns over RPC, and what it reads from other services' events."""

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema


class AppointmentBooked(Schema):
    """The fields of ``appointment.booked`` (scheduling) that billing needs."""

    appointment_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    visit_type = fields.String(required=True)
    start_at = fields.AwareDateTime(required=True)
    hold_id = fields.String(load_default=None)
    quote_id = fields.String(load_default=None)
    postal_code = fields.String(load_default=None)


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
    hold_id = fields.String(allow_none=True)
    fee_cents = fields.Integer()
    package_credit = fields.Dict(allow_none=True)
    payments = fields.List(fields.Nested(lambda: PaymentSchema()))
    refunds = fields.List(fields.Nested(lambda: RefundSchema()))
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


class _Tolerant(Schema):
    class Meta:
        unknown = EXCLUDE


class PatientRegistered(_Tolerant):
    """The fields of ``patient.registered`` (intake) billing needs for the Stripe customer."""

    patient_id = fields.String(required=True)
    first_name = fields.String(required=True)
    last_name = fields.String(load_default=None)
    email = fields.String(required=True)


class BookingFailed(_Tolerant):
    hold_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    reason = fields.String(load_default="booking_failed")


class AppointmentCancelled(_Tolerant):
    appointment_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    by = fields.String(required=True, validate=validate.OneOf(["patient", "clinic"]))
    notice_hours = fields.Float(required=True)
    reason = fields.String(load_default=None)


class AppointmentNoShow(_Tolerant):
    appointment_id = fields.String(required=True)
    patient_id = fields.String(required=True)


class VisitAborted(_Tolerant):
    appointment_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    reason = fields.String(required=True)
    chargeable = fields.Boolean(required=True)


class VisitCompleted(_Tolerant):
    appointment_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    visit_type = fields.String(required=True)
    infusion_minutes = fields.Integer(load_default=None)
    completed_at = fields.AwareDateTime(load_default=None)


class PatientDeclined(_Tolerant):
    patient_id = fields.String(required=True)
    reason_code = fields.String(load_default="declined")


class DepositRequestSchema(Schema):
    hold_id = fields.String(required=True, validate=validate.Length(min=1, max=128))
    payment_method_id = fields.String(required=True, validate=validate.Regexp(r"^pm_[A-Za-z0-9_]{1,120}$"))
    patient_id = fields.String(load_default=None)


class DepositSchema(Schema):
    hold_id = fields.String()
    status = fields.String()
    payment_intent_id = fields.String(allow_none=True)
    client_secret = fields.String(allow_none=True)
    amount_cents = fields.Integer()
    currency = fields.String()


class RefundRequestSchema(Schema):
    amount_cents = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    currency = fields.String(required=True, validate=validate.Regexp(r"^[a-z]{3}$"))
    reason = fields.String(required=True, validate=validate.Length(min=3, max=200))
    requested_by = fields.String(required=True)


class PaymentSchema(Schema):
    payment_intent_id = fields.String()
    kind = fields.String()
    amount_cents = fields.Integer()
    currency = fields.String()
    posted_at = fields.AwareDateTime()


class RefundSchema(Schema):
    refund_id = fields.String()
    amount_cents = fields.Integer()
    currency = fields.String()
    reason = fields.String()
    posted_at = fields.AwareDateTime()


class ExportRequestSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(
        ["payments", "refunds", "fees", "ledger", "daily-revenue"]))
    date_from = fields.Date(required=True)
    date_to = fields.Date(required=True)

    @validates_schema
    def _a_range_of_at_most_a_year(self, data: dict, **_: object) -> None:
        if data["date_to"] < data["date_from"]:
            raise ValidationError({"date_to": ["must not be before date_from"]})
        if (data["date_to"] - data["date_from"]).days > 366:
            raise ValidationError({"date_to": ["a range of at most 366 days"]})


class PackagePurchaseSchema(Schema):
    patient_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    package = fields.String(required=True, validate=validate.Length(min=1, max=64))
    payment_method_id = fields.String(required=True, validate=validate.Regexp(r"^pm_[A-Za-z0-9_]{1,120}$"))
    discount_codes = fields.List(fields.String(validate=validate.Length(min=1, max=64)), load_default=list,
                                 validate=validate.Length(max=5))
