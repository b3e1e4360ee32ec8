"""What notifications reads from other services' events (only the fields it needs; unknown ones are ignored),
and what it accepts and returns over RPC."""

from marshmallow import Schema, fields

Id = fields.String
Instant = fields.AwareDateTime


class PatientRegistered(Schema):
    patient_id = Id(required=True)
    first_name = fields.String(required=True)
    email = fields.String(required=True)
    phone = fields.String(required=True)
    time_zone = fields.String(required=True)
    sms_opt_in = fields.Boolean(required=True)
    locale = fields.String(allow_none=True)


class PatientUpdated(Schema):
    patient_id = Id(required=True)
    first_name = fields.String()
    email = fields.String()
    phone = fields.String()
    time_zone = fields.String()
    sms_opt_in = fields.Boolean()
    locale = fields.String(allow_none=True)


class PatientFact(Schema):
    """``screening.submitted``, ``patient.declined``: only who."""

    patient_id = Id(required=True)


class BookingFailed(Schema):
    patient_id = Id(required=True)
    reason = fields.String(load_default="")  # scheduling's: hold_lapsed_and_..., patient_not_eligible_..., ...


class PatientCleared(Schema):
    patient_id = Id(required=True)
    planned_sessions = fields.Integer(allow_none=True)


class ReviewRequested(Schema):
    review_id = Id(required=True)
    patient_id = Id(required=True)
    urgent = fields.Boolean(required=True)
    clinician_id = Id(allow_none=True)


class HoldPlaced(Schema):
    hold_id = Id(required=True)
    patient_id = Id(required=True)
    start_at = Instant(required=True)
    time_zone = fields.String(required=True)
    expires_at = Instant(required=True)
    deposit_cents = fields.Integer(required=True)
    currency = fields.String(required=True)


class Money(Schema):
    """``deposit.paid``, ``payment.succeeded``, ``payment.failed``, ``refund.issued``, ``fee.charged``."""

    patient_id = Id(required=True)
    amount_cents = fields.Integer(required=True)
    currency = fields.String(required=True)


class AppointmentBooked(Schema):
    appointment_id = Id(required=True)
    patient_id = Id(required=True)
    visit_type = fields.String(required=True)
    start_at = Instant(required=True)
    end_at = Instant(required=True)
    time_zone = fields.String(required=True)


class AppointmentRescheduled(AppointmentBooked):
    previous_start_at = Instant(required=True)


class AppointmentCancelled(Schema):
    appointment_id = Id(required=True)
    patient_id = Id(required=True)
    start_at = Instant(required=True)
    time_zone = fields.String(required=True)
    by = fields.String(required=True)


class WaitlistOffered(Schema):
    waitlist_id = Id(required=True)
    patient_id = Id(required=True)
    start_at = Instant(required=True)
    time_zone = fields.String(required=True)
    expires_at = Instant(required=True)


class VisitEnRoute(Schema):
    appointment_id = Id(required=True)
    patient_id = Id(required=True)
    time_zone = fields.String(required=True)
    arrival_from = Instant(required=True)
    arrival_to = Instant(required=True)


class VisitDischarged(Schema):
    appointment_id = Id(required=True)
    patient_id = Id(required=True)
    visit_type = fields.String(required=True)
    time_zone = fields.String(required=True)
    discharged_at = Instant(required=True)


class InvoiceCreated(Schema):
    invoice_id = Id(required=True)
    patient_id = Id(required=True)
    currency = fields.String(required=True)
    total_cents = fields.Integer(required=True)
    visit_start_at = Instant(required=True)


class MessageSchema(Schema):
    """One entry of the delivery log."""

    id = fields.String(attribute="_id")
    patient_id = fields.String(allow_none=True)
    kind = fields.String()
    channel = fields.String()
    to = fields.String()
    subject = fields.String(allow_none=True)
    body = fields.String()
    status = fields.String()  # pending, sending, sent, failed, skipped
    attempts = fields.Integer()
    provider_message_id = fields.String(allow_none=True)
    last_error = fields.String(allow_none=True)
    not_before = fields.AwareDateTime()
    sent_at = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime()
    templates_version = fields.String()
    caused_by = fields.String()


class PreferencesSchema(Schema):
    email = fields.Dict(keys=fields.String(), values=fields.Boolean())
    sms = fields.Dict(keys=fields.String(), values=fields.Boolean())
    sms_stopped = fields.Boolean()
