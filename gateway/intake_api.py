"""Public routes that intake answers, beyond the foundation's in ``gateway.endpoints``.

Each route is a ``Route`` in ``ROUTES`` (which ``gateway.endpoints.ROUTES`` includes, so OpenAPI, roles,
idempotency, the PHI audit and the authorisation tests cover it) and one ``@api`` handler in
``IntakeApi``, a mixin of ``gateway.service.GatewayService``, which gives it ``self.intake`` and the other
services' RPC proxies.

Screening, referral, consent, eligibility and the review queue. Clinicians reach only the patients in their
care (and their reviews); a patient sees no scores, no rule that fired and, after a risk answer, crisis
resources instead of any decision. Signing a consent records the caller's IP and user agent.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from gateway.access import require_patient_access
from gateway.api import ApiRequest, Forbidden, api
from gateway.pagination import PageQuerySchema
from gateway.routes import Route
from gateway.schemas import LANGUAGE_TAG, AddressSchema, ContactPersonSchema, PatientSchema

_ID = validate.Length(min=1, max=100)
UPSTREAM = (502, 503, 504)
STAFF = ("clinician", "admin")


# --- bodies -------------------------------------------------------------------------------------------------

class PatientUpdateSchema(Schema):
    first_name = fields.String(validate=validate.Length(min=1, max=100))
    last_name = fields.String(validate=validate.Length(min=1, max=100))
    email = fields.Email(validate=validate.Length(max=254))
    phone = fields.String(validate=validate.Regexp(r"^\+[1-9]\d{7,14}$", error="E.164, e.g. +13035550100"),
                          metadata={"example": "+13035550199"})
    address = fields.Nested(AddressSchema)
    time_zone = fields.String(metadata={"example": "America/Denver"})
    sms_opt_in = fields.Boolean()
    locale = fields.String(allow_none=True, validate=validate.Regexp(LANGUAGE_TAG, error="a language tag: en, es-US"),
                           metadata={"description": "The patient's language for messages (default en)"})
    escort = fields.Nested(ContactPersonSchema)
    emergency_contact = fields.Nested(ContactPersonSchema)


class ScreeningSubmissionSchema(Schema):
    instrument = fields.String(required=True, validate=validate.Length(min=1, max=40), metadata={"example": "phq-9"})
    answers = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=40)), values=fields.Integer(),
                          required=True, metadata={"description": "Item code -> answer (every item, in range)"})


class CrisisResourceSchema(Schema):
    name = fields.String(required=True)
    contact = fields.String(required=True)
    text = fields.String(required=True)


class ScreeningReceiptSchema(Schema):
    id = fields.String(required=True)
    patient_id = fields.String(required=True)
    instrument = fields.String(required=True)
    submitted_at = fields.DateTime(required=True)
    message = fields.String(required=True)
    crisis_resources = fields.List(fields.Nested(CrisisResourceSchema),
                                   metadata={"description": "After a risk answer: where to get help now"})


class ScreeningSchema(Schema):
    """Answers and scores are given to clinicians and admins only."""

    id = fields.String(required=True)
    patient_id = fields.String(required=True)
    instrument = fields.String(required=True)
    submitted_at = fields.DateTime(required=True)
    instruments_version = fields.String()
    answers = fields.Dict(keys=fields.String(), values=fields.Integer())
    total = fields.Integer(allow_none=True)
    band = fields.String(allow_none=True)
    cut_off_met = fields.Boolean(allow_none=True)
    risk_items = fields.List(fields.String())


class ScreeningHistorySchema(Schema):
    items = fields.List(fields.Nested(ScreeningSchema), required=True, metadata={"description": "Newest first"})


class QuestionnaireSchema(Schema):
    code = fields.String(required=True)
    title = fields.String(required=True)
    instructions = fields.String(required=True)
    answers = fields.Dict(required=True, metadata={"description": "min, max and a label per answer"})
    items = fields.List(fields.Dict(), required=True, metadata={"description": "code and text of each item"})


class QuestionnairesSchema(Schema):
    version = fields.String(required=True)
    required = fields.List(fields.String(), required=True)
    items = fields.List(fields.Nested(QuestionnaireSchema), required=True)


class ReferralRequestSchema(Schema):
    kind = fields.String(validate=validate.OneOf(["referral", "telehealth_evaluation"]),
                         metadata={"description": "a telehealth evaluation is recorded by one of our clinicians"})
    clinician_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    npi = fields.String(required=True, validate=validate.Length(min=1, max=20), metadata={"example": "1234567893"})
    icd10_codes = fields.List(fields.String(validate=validate.Length(min=1, max=10)), required=True,
                              metadata={"example": ["F33.1"]})
    document_reference = fields.String(required=True, validate=validate.Length(min=1, max=500))


class ReferralSchema(ReferralRequestSchema):
    id = fields.String(required=True)
    patient_id = fields.String(required=True)
    recorded_by = fields.String(required=True)
    recorded_at = fields.DateTime(required=True)


class ConsentDocumentSchema(Schema):
    version = fields.String(required=True)
    effective_from = fields.DateTime(required=True)
    title = fields.String(required=True)
    text = fields.String(required=True)


class ConsentRequestSchema(Schema):
    document_version = fields.String(required=True, validate=validate.Length(min=1, max=40),
                                     metadata={"description": "The version of GET /v1/consent-documents/current"})


class ConsentSchema(Schema):
    id = fields.String(required=True)
    patient_id = fields.String(required=True)
    document_version = fields.String(required=True)
    signed_at = fields.DateTime(required=True)
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class EligibilityExplanationSchema(Schema):
    patient_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "registered, screened, in_review, cleared or "
                                                                   "declined"})
    eligible = fields.Boolean(required=True, metadata={"description": "May book an infusion now"})
    reasons = fields.List(fields.String(), required=True)
    explanations = fields.List(fields.Dict(), required=True, metadata={"description": "Each reason in words"})
    rules_version = fields.String(required=True)
    crisis_resources = fields.List(fields.Nested(CrisisResourceSchema))
    contraindications = fields.Dict(allow_none=True, metadata={
        "description": "Patients: the outcome in plain words; clinicians: the rules that fired, their inputs and "
                       "the rule-set version"})
    treatment_plan = fields.Dict(allow_none=True, metadata={"description": "Clinicians and admins only"})


class ReviewQuerySchema(PageQuerySchema):
    patient_id = fields.String(validate=_ID)


class ReviewSchema(Schema):
    id = fields.String(required=True)
    patient_id = fields.String(required=True)
    clinician_id = fields.String(allow_none=True)
    urgent = fields.Boolean(required=True)
    reasons = fields.List(fields.String(), required=True)
    status = fields.String(required=True, validate=validate.OneOf(["open", "approved", "declined"]))
    opened_at = fields.DateTime(required=True)
    decided_at = fields.DateTime(allow_none=True)
    decided_by = fields.String(allow_none=True)
    decision = fields.Dict(allow_none=True)


class ReviewFileSchema(Schema):
    review = fields.Nested(ReviewSchema, required=True)
    patient = fields.Nested(PatientSchema, required=True)
    screenings = fields.List(fields.Nested(ScreeningSchema), required=True)
    contraindications = fields.Dict(allow_none=True)
    consent = fields.String(required=True, metadata={"description": "current, outdated, revoked or missing"})
    consents = fields.List(fields.Nested(ConsentSchema), required=True)
    referrals = fields.List(fields.Nested(ReferralSchema), required=True)
    protocols = fields.List(fields.Dict(), required=True)
    decline_reasons = fields.List(fields.String(), required=True)


class TreatmentPlanRequestSchema(Schema):
    protocol_code = fields.String(required=True, validate=validate.Length(min=1, max=40),
                                  metadata={"example": "depression-induction"})
    dose_mg_per_kg = fields.Float(required=True, metadata={"example": 0.5})
    planned_sessions = fields.Integer(validate=validate.Range(min=1, max=50))


class ReviewDecisionRequestSchema(Schema):
    decision = fields.String(required=True, validate=validate.OneOf(["approve", "decline"]))
    plan = fields.Nested(TreatmentPlanRequestSchema, metadata={"description": "Required to approve"})
    reason_code = fields.String(validate=validate.Length(min=1, max=60),
                                metadata={"description": "Required to decline"})
    note = fields.String(validate=validate.Length(max=2000))


# --- routes -------------------------------------------------------------------------------------------------

UPDATE_PATIENT = Route(
    "PATCH", "/v1/patients/{patient_id}", "updatePatient", "Change a patient's contact details or address",
    "patients", roles=("patient", "admin"), request_schema=PatientUpdateSchema, response_schema=PatientSchema,
    errors=(404, 409, *UPSTREAM), phi_resource="patient")
LIST_QUESTIONNAIRES = Route(
    "GET", "/v1/questionnaires", "listQuestionnaires", "The screening instruments, for the website to render",
    "screening", auth="none", response_schema=QuestionnairesSchema, errors=UPSTREAM)
SUBMIT_SCREENING = Route(
    "POST", "/v1/patients/{patient_id}/screenings", "submitScreening",
    "Submit a questionnaire (kept with its score; a risk answer gets crisis resources and an urgent review)",
    "screening", roles=("patient", *STAFF), request_schema=ScreeningSubmissionSchema,
    response_schema=ScreeningReceiptSchema, response_status=201, errors=(404, *UPSTREAM), phi_resource="screening",
    idempotent=True)
LIST_SCREENINGS = Route(
    "GET", "/v1/patients/{patient_id}/screenings", "listScreenings",
    "A patient's submitted questionnaires, newest first (answers and scores for clinicians and admins)", "screening",
    roles=("patient", *STAFF), response_schema=ScreeningHistorySchema, errors=(404, *UPSTREAM),
    phi_resource="screening")
RECORD_REFERRAL = Route(
    "POST", "/v1/patients/{patient_id}/referrals", "recordReferral",
    "Record a referral (NPI, ICD-10-CM codes, document) or our clinician's telehealth evaluation", "screening",
    roles=("patient", *STAFF), request_schema=ReferralRequestSchema, response_schema=ReferralSchema,
    response_status=201, errors=(404, *UPSTREAM), phi_resource="referral", idempotent=True)
CURRENT_CONSENT_DOCUMENT = Route(
    "GET", "/v1/consent-documents/current", "getCurrentConsentDocument", "The consent document patients sign now",
    "consent", auth="none", response_schema=ConsentDocumentSchema, errors=UPSTREAM)
SIGN_CONSENT = Route(
    "POST", "/v1/patients/{patient_id}/consents", "signConsent",
    "Sign the current consent document (the time, IP and user agent are recorded)", "consent", roles=("patient",),
    request_schema=ConsentRequestSchema, response_schema=ConsentSchema, response_status=201,
    errors=(404, *UPSTREAM), phi_resource="consent", idempotent=True)
REVOKE_CONSENT = Route(
    "DELETE", "/v1/patients/{patient_id}/consents/{consent_id}", "revokeConsent",
    "Withdraw a consent: no infusion can be booked on it, and future infusions are cancelled", "consent",
    roles=("patient", "admin"), response_schema=ConsentSchema, errors=(404, *UPSTREAM), phi_resource="consent")
GET_ELIGIBILITY = Route(
    "GET", "/v1/patients/{patient_id}/eligibility", "getEligibility",
    "May the patient book an infusion, and why not, in words (the rules that fired for clinicians)", "screening",
    roles=("patient", *STAFF), response_schema=EligibilityExplanationSchema, errors=(404, *UPSTREAM),
    phi_resource="eligibility")
LIST_REVIEWS = Route(
    "GET", "/v1/reviews", "listReviews",
    "Open clinician reviews, urgent first, then oldest (clinicians: their patients')", "reviews", roles=STAFF,
    query_schema=ReviewQuerySchema, response_schema=ReviewSchema, many=True, errors=UPSTREAM, phi_resource="review")
GET_REVIEW = Route(
    "GET", "/v1/reviews/{review_id}", "getReview", "Open a review: everything the decision needs", "reviews",
    roles=STAFF, response_schema=ReviewFileSchema, errors=(404, *UPSTREAM), phi_resource="review")
DECIDE_REVIEW = Route(
    "POST", "/v1/reviews/{review_id}/decision", "decideReview",
    "Approve with a treatment plan, or decline with a reason (the responsible clinician or an admin)", "reviews",
    roles=STAFF, request_schema=ReviewDecisionRequestSchema, response_schema=ReviewSchema,
    errors=(404, 409, *UPSTREAM), phi_resource="review", phi_action="update", idempotent=True)

ROUTES: tuple[Route, ...] = (
    UPDATE_PATIENT, LIST_QUESTIONNAIRES, SUBMIT_SCREENING, LIST_SCREENINGS, RECORD_REFERRAL, CURRENT_CONSENT_DOCUMENT,
    SIGN_CONSENT, REVOKE_CONSENT, GET_ELIGIBILITY, LIST_REVIEWS, GET_REVIEW, DECIDE_REVIEW,
)


def _audience(request: ApiRequest) -> str:
    """Who an answer is shaped for: clinicians and admins see scores and rules, patients plain words."""
    return "clinician" if request.role in STAFF else "patient"


class IntakeApi:
    """Handlers of ``ROUTES``: check who may see which record (``gateway.access``), ask intake."""

    intake: Any

    @api(UPDATE_PATIENT)
    def update_patient(self, request: ApiRequest, patient_id: str) -> dict[str, Any]:
        require_patient_access(request, patient_id, self.intake)
        return self.intake.update_patient(patient_id, request.body)

    @api(LIST_QUESTIONNAIRES)
    def list_questionnaires(self, request: ApiRequest) -> dict[str, Any]:
        return self.intake.list_questionnaires()

    @api(SUBMIT_SCREENING)
    def submit_screening(self, request: ApiRequest, patient_id: str) -> dict[str, Any]:
        require_patient_access(request, patient_id, self.intake)
        return self.intake.submit_screening(patient_id, request.body)

    @api(LIST_SCREENINGS)
    def list_screenings(self, request: ApiRequest, patient_id: str) -> dict[str, Any]:
        require_patient_access(request, patient_id, self.intake)
        return self.intake.list_screenings(patient_id, _audience(request))

    @api(RECORD_REFERRAL)
    def record_referral(self, request: ApiRequest, patient_id: str) -> dict[str, Any]:
        require_patient_access(request, patient_id, self.intake)
        if request.body.get("kind") == "telehealth_evaluation" and request.role not in STAFF:
            raise Forbidden("A telehealth evaluation is recorded by one of our clinicians.")
        return self.intake.record_referral(patient_id, request.body, request.subject)

    @api(CURRENT_CONSENT_DOCUMENT)
    def current_consent_document(self, request: ApiRequest) -> dict[str, Any]:
        return self.intake.current_consent_document()

    @api(SIGN_CONSENT)
    def sign_consent(self, request: ApiRequest, patient_id: str) -> dict[str, Any]:
        require_patient_access(request, patient_id, self.intake)
        return self.intake.sign_consent(patient_id, {**request.body, "ip": request.ip,
                                                     "user_agent": request.user_agent})

    @api(REVOKE_CONSENT)
    def revoke_consent(self, request: ApiRequest, patient_id: str, consent_id: str) -> dict[str, Any]:
        require_patient_access(request, patient_id, self.intake)
        return self.intake.revoke_consent(patient_id, consent_id)

    @api(GET_ELIGIBILITY)
    def get_eligibility(self, request: ApiRequest, patient_id: str) -> dict[str, Any]:
        require_patient_access(request, patient_id, self.intake)
        return self.intake.explain_eligibility(patient_id, _audience(request))

    @api(LIST_REVIEWS)
    def list_reviews(self, request: ApiRequest) -> dict[str, Any]:
        clinician_id = request.subject if request.role == "clinician" else None
        return self.intake.list_reviews(clinician_id=clinician_id, patient_id=request.query.get("patient_id"),
                                        cursor=request.query.get("cursor"), limit=request.query.get("limit"))

    @api(GET_REVIEW)
    def get_review(self, request: ApiRequest, review_id: str) -> dict[str, Any]:
        require_patient_access(request, self.intake.review_patient(review_id)["patient_id"], self.intake)
        return self.intake.get_review(review_id)

    @api(DECIDE_REVIEW)
    def decide_review(self, request: ApiRequest, review_id: str) -> dict[str, Any]:
        # Intake itself checks that the caller is the patient's responsible clinician (or an admin).
        return self.intake.decide_review(review_id, request.body, request.subject, request.role)
