"""The public API's request and response bodies. The same schemas validate requests and build OpenAPI.

They are the gateway's contract with the website and the apps; each service validates its RPC input
again with its own schemas, so a service stays safe when called by anything else.
"""

from __future__ import annotations

from zoneinfo import available_timezones

from marshmallow import Schema, ValidationError, fields, validate, validates

from chassis.service import date_in_the_past, plausible_instant
from gateway.pagination import PageQuerySchema

_TIME_ZONES = frozenset(available_timezones())
_ID = validate.Length(min=1, max=100)
_CLOCK = validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$", error="a local time HH:MM")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

LANGUAGE_TAG = r"^[a-z]{2}(-[A-Z]{2})?$"


class AddressSchema(Schema):
    line1 = fields.String(required=True, validate=validate.Length(min=1, max=200))
    line2 = fields.String(validate=validate.Length(max=200))
    city = fields.String(required=True, validate=validate.Length(min=1, max=100))
    state = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{2}$", error="two capital letters"),
                          metadata={"example": "CO"})
    postal_code = fields.String(required=True, validate=validate.Regexp(r"^\d{5}(-\d{4})?$"),
                                metadata={"example": "80202"})


class ContactPersonSchema(Schema):
    """The escort (the responsible adult present at discharge) or the emergency contact."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    phone = fields.String(required=True,
                          validate=validate.Regexp(r"^\+[1-9]\d{7,14}$", error="E.164, e.g. +13035550100"),
                          metadata={"example": "+13035550143"})
    relationship = fields.String(required=True, validate=validate.Length(min=1, max=100),
                                 metadata={"example": "partner"})


class MedicationsSchema(Schema):
    text = fields.String(validate=validate.Length(max=2000), metadata={"description": "As the patient wrote it"})
    names = fields.List(fields.String(validate=validate.Length(min=1, max=100)), validate=validate.Length(max=50),
                        metadata={"example": ["sertraline"]})


class PatientRegistrationSchema(Schema):
    first_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    last_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    email = fields.Email(required=True, validate=validate.Length(max=254))
    phone = fields.String(required=True,
                          validate=validate.Regexp(r"^\+[1-9]\d{7,14}$", error="E.164, e.g. +13035550100"),
                          metadata={"example": "+13035550100"})
    date_of_birth = fields.Date(required=True, validate=date_in_the_past, metadata={"example": "1985-04-02"})
    address = fields.Nested(AddressSchema, required=True)
    time_zone = fields.String(required=True, metadata={"example": "America/Denver"})
    sms_opt_in = fields.Boolean(metadata={"description": "Consent to receive texts (TCPA)"})
    locale = fields.String(allow_none=True, validate=validate.Regexp(LANGUAGE_TAG, error="a language tag: en, es-US"),
                           metadata={"description": "The patient's language for messages (default en)"})
    escort = fields.Nested(ContactPersonSchema, required=True,
                           metadata={"description": "The responsible adult present when the nurse leaves"})
    emergency_contact = fields.Nested(ContactPersonSchema, required=True)
    weight_kg = fields.Float(required=True, allow_nan=False, validate=validate.Range(min=30, max=300),
                             metadata={"description": "The dose is per kg", "example": 70})
    allergies = fields.List(fields.String(validate=validate.Length(min=1, max=100)), validate=validate.Length(max=50))
    medications = fields.Nested(MedicationsSchema)

    @validates("time_zone")
    def _known_time_zone(self, value: str, **_: object) -> None:
        if value not in _TIME_ZONES:
            raise ValidationError("unknown IANA time zone")


class PatientSchema(PatientRegistrationSchema):
    id = fields.String(required=True)
    status = fields.String(required=True)
    registered_at = fields.DateTime(required=True)
    clinician_id = fields.String(allow_none=True, metadata={"description": "The clinician responsible"})


class ClinicianAssignmentSchema(Schema):
    clinician_id = fields.String(required=True, validate=_ID)


class BookingRequestSchema(Schema):
    patient_id = fields.String(required=True, validate=_ID)
    visit_type = fields.String(required=True, validate=validate.Length(min=1, max=50),
                               metadata={"example": "iv-mood"})
    start_at = fields.AwareDateTime(required=True, validate=plausible_instant,
                                    metadata={"description": "UTC instant or offset time",
                                              "example": "2026-11-26T17:00:00Z"})
    nurse_id = fields.String(validate=_ID)
    series_id = fields.String(validate=_ID, metadata={"description": "a session of this treatment series"})


class HoldRequestSchema(BookingRequestSchema):
    discount_codes = fields.List(fields.String(validate=validate.Length(min=1, max=64)),
                                 validate=validate.Length(max=5),
                                 metadata={"description": "discounts claimed (e.g. veteran, first_responder): the "
                                                          "quote applies the best one the catalogue allows",
                                           "example": ["veteran"]})


class AppointmentSchema(Schema):
    id = fields.String(required=True)
    patient_id = fields.String(required=True)
    nurse_id = fields.String(required=True)
    visit_type = fields.String(required=True)
    status = fields.String(required=True)
    start_at = fields.DateTime(required=True)
    end_at = fields.DateTime(required=True)
    time_zone = fields.String(required=True)
    local_start = fields.String(required=True, metadata={"description": "Start in the patient's time zone"})
    booked_at = fields.DateTime(required=True)
    calendar_version = fields.String(required=True)
    hold_id = fields.String(metadata={"description": "the hold it was booked from, if any"})
    previous_start_at = fields.DateTime(metadata={"description": "before the last reschedule"})
    cancelled_at = fields.DateTime()
    cancelled_by = fields.String(validate=validate.OneOf(["patient", "clinic"]))
    cancellation_reason = fields.String()
    notice_hours = fields.Float(metadata={"description": "hours between the cancellation and the visit"})


class AppointmentQuerySchema(PageQuerySchema):
    patient_id = fields.String(validate=_ID)
    nurse_id = fields.String(validate=_ID)


class LineItemSchema(Schema):
    code = fields.String(required=True)
    description = fields.String(required=True)
    quantity = fields.Integer(required=True)
    unit_amount_cents = fields.Integer(required=True)
    amount_cents = fields.Integer(required=True)


class InvoiceSchema(Schema):
    id = fields.String(required=True)
    appointment_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    status = fields.String(required=True)
    currency = fields.String(required=True)
    line_items = fields.List(fields.Nested(LineItemSchema), required=True)
    discount_cents = fields.Integer()
    total_cents = fields.Integer(required=True)
    deposit_cents = fields.Integer(metadata={"description": "due when the visit was held (its quote's)"})
    amount_due_cents = fields.Integer(required=True)
    quote_id = fields.String(allow_none=True, metadata={"description": "the quote the visit was booked at"})
    hold_id = fields.String(allow_none=True)
    fee_cents = fields.Integer(metadata={"description": "kept when the visit was called off"})
    payments = fields.List(fields.Nested(lambda: InvoicePaymentSchema()), metadata={"description": "one invoice"})
    refunds = fields.List(fields.Nested(lambda: InvoiceRefundSchema()), metadata={"description": "one invoice"})
    catalogue_version = fields.String(required=True)
    visit_start_at = fields.DateTime(required=True)
    created_at = fields.DateTime(required=True)


class InvoicePaymentSchema(Schema):
    payment_intent_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["deposit", "balance"]))
    amount_cents = fields.Integer(required=True)
    currency = fields.String(required=True)
    posted_at = fields.DateTime(required=True)


class InvoiceRefundSchema(Schema):
    refund_id = fields.String(required=True)
    amount_cents = fields.Integer(required=True)
    currency = fields.String(required=True)
    reason = fields.String(required=True)
    posted_at = fields.DateTime(required=True)


class InvoiceQuerySchema(PageQuerySchema):
    appointment_id = fields.String(validate=_ID)
    patient_id = fields.String(validate=_ID)


class MessageSchema(Schema):
    """One entry of the delivery log: one message of one kind, on one channel, to one recipient."""

    id = fields.String(required=True)
    patient_id = fields.String(required=True)
    kind = fields.String(required=True, metadata={"example": "appointment.booked"})
    channel = fields.String(required=True, validate=validate.OneOf(["email", "sms"]))
    to = fields.String(required=True)
    subject = fields.String(allow_none=True)
    body = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["pending", "sending", "sent", "failed", "skipped"]),
                           metadata={"description": "pending (waiting for its moment or a retry), sending, sent, "
                                                    "failed (every attempt used, or refused), skipped (too late)"})
    attempts = fields.Integer(required=True)
    provider_message_id = fields.String(allow_none=True)
    last_error = fields.String(allow_none=True)
    not_before = fields.DateTime(required=True, metadata={"description": "not sent before (quiet hours, retries)"})
    sent_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime(required=True)
    templates_version = fields.String(required=True)
    caused_by = fields.String(required=True, metadata={"description": "the event or reminder that caused it"})


class ShiftSchema(Schema):
    start = fields.String(required=True, validate=_CLOCK, metadata={"example": "08:00"})
    end = fields.String(required=True, validate=_CLOCK, metadata={"example": "17:00"})


class ExceptionDaySchema(Schema):
    date = fields.Date(required=True)
    hours = fields.List(fields.Nested(ShiftSchema), required=True,
                        metadata={"description": "the hours worked that date: empty for a day off"})


class NurseHoursSchema(Schema):
    weekly_hours = fields.Dict(keys=fields.String(validate=validate.OneOf(WEEKDAYS)),
                               values=fields.List(fields.Nested(ShiftSchema)), required=True,
                               metadata={"description": "working hours in the nurse's time zone, by weekday"})
    exceptions = fields.List(fields.Nested(ExceptionDaySchema),
                             metadata={"description": "dates whose hours replace the weekly ones"})


class LicenceSchema(Schema):
    state = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{2}$"), metadata={"example": "CO"})
    number = fields.String(required=True, validate=validate.Length(min=1, max=40))
    expires_on = fields.Date(required=True)


class PlaceSchema(Schema):
    latitude = fields.Float(required=True, validate=validate.Range(min=-90, max=90))
    longitude = fields.Float(required=True, validate=validate.Range(min=-180, max=180))


class ServiceAreaSchema(Schema):
    radius_miles = fields.Float(metadata={"description": "how far from the home base the nurse travels"})
    postal_codes = fields.List(fields.String(), metadata={"description": "or the ZIP codes the nurse serves"})


class NurseUpdateSchema(NurseHoursSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    time_zone = fields.String(required=True, metadata={"example": "America/Denver"})
    licences = fields.List(fields.Nested(LicenceSchema), required=True, validate=validate.Length(min=1),
                           metadata={"description": "RN licences, one per US state or territory"})
    home_base = fields.Nested(PlaceSchema, required=True)
    service_area = fields.Nested(ServiceAreaSchema, required=True)
    active = fields.Boolean()


class NurseSchema(NurseUpdateSchema):
    id = fields.String(required=True)
    active = fields.Boolean(required=True)
    licensed_states = fields.List(fields.String(), required=True)


class AuditEntrySchema(Schema):
    entry_id = fields.String(required=True)
    subject = fields.String(required=True)
    role = fields.String(required=True)
    action = fields.String(required=True)
    resource = fields.String(required=True)
    resource_id = fields.String(allow_none=True)
    at = fields.DateTime(required=True)
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)
    outcome = fields.Integer(required=True, allow_none=True,
                             metadata={"description": "HTTP status; null while running or if it was not recorded"})


class AuditQuerySchema(PageQuerySchema):
    subject = fields.String(validate=_ID)
    resource = fields.String(validate=validate.Length(min=1, max=50))
    resource_id = fields.String(validate=_ID)
    since = fields.AwareDateTime(validate=plausible_instant)
    until = fields.AwareDateTime(validate=plausible_instant)


class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok", "unavailable"]))
    checks = fields.Dict(keys=fields.String(), values=fields.String())
