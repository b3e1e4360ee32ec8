"""Events intake emits: the published contract, one schema per type and version."""

from marshmallow import Schema, fields

from chassis.events import event_schema


@event_schema("patient.registered", version=1)
class PatientRegistered(Schema):
    """Contact details notifications needs to reach the patient; no health data."""

    patient_id = fields.String(required=True)
    first_name = fields.String(required=True)
    email = fields.String(required=True)
    phone = fields.String(required=True)
    time_zone = fields.String(required=True)
    sms_opt_in = fields.Boolean(required=True)
    locale = fields.String(allow_none=True, metadata={"description": "the patient's language (en, es-US), if given"})


@event_schema("patient.updated", version=1)
class PatientUpdated(Schema):
    """Only the changed non-clinical fields, beside the patient id."""

    patient_id = fields.String(required=True)
    first_name = fields.String()
    last_name = fields.String()
    email = fields.String()
    phone = fields.String()
    time_zone = fields.String()
    sms_opt_in = fields.Boolean()
    locale = fields.String()
    state = fields.String()
    postal_code = fields.String()


@event_schema("screening.submitted", version=1)
class ScreeningSubmitted(Schema):
    """That a questionnaire was submitted: no answers, no scores."""

    patient_id = fields.String(required=True)
    screening_id = fields.String(required=True)
    instrument = fields.String(required=True)
    submitted_at = fields.AwareDateTime(required=True)


@event_schema("review.requested", version=1)
class ReviewRequested(Schema):
    review_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    urgent = fields.Boolean(required=True)
    clinician_id = fields.String(required=True, allow_none=True)


@event_schema("patient.cleared", version=1)
class PatientCleared(Schema):
    patient_id = fields.String(required=True)
    review_id = fields.String(required=True)
    protocol_code = fields.String(required=True)
    planned_sessions = fields.Integer(required=True)


@event_schema("patient.declined", version=1)
class PatientDeclined(Schema):
    patient_id = fields.String(required=True)
    review_id = fields.String(required=True, allow_none=True)
    reason_code = fields.String(required=True)


@event_schema("consent.signed", version=1)
class ConsentSigned(Schema):
    patient_id = fields.String(required=True)
    consent_id = fields.String(required=True)
    document_version = fields.String(required=True)


@event_schema("consent.revoked", version=1)
class ConsentRevoked(Schema):
    patient_id = fields.String(required=True)
    consent_id = fields.String(required=True)
