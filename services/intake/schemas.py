"""What intake accepts and returns over RPC."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import available_timezones

import yaml
import zipcodes
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates, validates_schema

from chassis.service import date_in_the_past

_TIME_ZONES = frozenset(available_timezones())
_US_STATES_FILE = Path(__file__).parent / "config" / "us_states.yml"


def _us_state_codes() -> frozenset[str]:
    listed = yaml.safe_load(_US_STATES_FILE.read_text())
    return frozenset(listed["states"] + listed["district"] + listed["territories"])


US_STATE_CODES = _us_state_codes()
PHONE = validate.Regexp(r"^\+[1-9]\d{7,14}$", error="E.164, e.g. +13035550100")
MIN_WEIGHT_KG, MAX_WEIGHT_KG = 30, 300


class AddressSchema(Schema):
    line1 = fields.String(required=True, validate=validate.Length(min=1, max=200))
    line2 = fields.String(validate=validate.Length(max=200))
    city = fields.String(required=True, validate=validate.Length(min=1, max=100))
    state = fields.String(required=True, validate=validate.OneOf(
        sorted(US_STATE_CODES), error="not a US state, district or territory postal code (e.g. CO)"))
    postal_code = fields.String(required=True, validate=validate.Regexp(r"^\d{5}(-\d{4})?$"))
    location = fields.Dict(dump_only=True, metadata={"description": "latitude and longitude of the ZIP code"})

    @validates("postal_code")
    def _a_zip_code_we_can_place(self, value: str, **_: object) -> None:
        if len(value) >= 5 and value[:5].isdigit() and zip_location(value) is None:
            raise ValidationError("not a US ZIP code in the ZIP-code table: a home visit needs a place to go")

    @post_load
    def _placed(self, address: dict[str, Any], **_: object) -> dict[str, Any]:
        """The address's coordinates, from the offline ZIP-code table, fixed at registration (and each change)."""
        return {**address, "location": zip_location(address["postal_code"])}


def zip_location(postal_code: str) -> dict[str, float] | None:
    """The centre of a US ZIP code from the ``zipcodes`` package's offline table, or None if it has none."""
    found = zipcodes.matching(postal_code[:5])
    if not found or not found[0].get("lat"):
        return None
    return {"latitude": float(found[0]["lat"]), "longitude": float(found[0]["long"])}


class ContactPersonSchema(Schema):
    """The escort (the responsible adult present at discharge) or the emergency contact."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    phone = fields.String(required=True, validate=PHONE)
    relationship = fields.String(required=True, validate=validate.Length(min=1, max=100))


class MedicationsSchema(Schema):
    text = fields.String(load_default="", validate=validate.Length(max=2000))
    names = fields.List(fields.String(validate=validate.Length(min=1, max=100)), load_default=list,
                        validate=validate.Length(max=50))


class _ContactFields(Schema):
    """Who the patient is and how to reach them: the fields a patient may change later."""

    first_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    last_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    email = fields.Email(required=True, validate=validate.Length(max=254))
    phone = fields.String(required=True, validate=PHONE)
    address = fields.Nested(AddressSchema, required=True)
    time_zone = fields.String(required=True)
    sms_opt_in = fields.Boolean(load_default=False)
    locale = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(
        r"^[a-z]{2}(-[A-Z]{2})?$", error="a language tag such as en or es-US"))
    escort = fields.Nested(ContactPersonSchema, required=True)
    emergency_contact = fields.Nested(ContactPersonSchema, required=True)

    @validates("time_zone")
    def _known_time_zone(self, value: str, **_: object) -> None:
        if value not in _TIME_ZONES:
            raise ValidationError("unknown IANA time zone")


class PatientRegistrationSchema(_ContactFields):
    date_of_birth = fields.Date(required=True, validate=date_in_the_past)
    weight_kg = fields.Float(required=True, allow_nan=False, validate=validate.Range(
        min=MIN_WEIGHT_KG, max=MAX_WEIGHT_KG, error=f"must be between {MIN_WEIGHT_KG} and {MAX_WEIGHT_KG} kg"))
    allergies = fields.List(fields.String(validate=validate.Length(min=1, max=100)), load_default=list,
                            validate=validate.Length(max=50))
    medications = fields.Nested(MedicationsSchema, load_default=lambda: {"text": "", "names": []})


class PatientUpdateSchema(_ContactFields):
    """``PATCH`` (load with ``partial`` naming every top-level field): any contact fields, at least one, each
    given whole; clinical fields are not changed this way."""

    @validates_schema
    def _something_to_change(self, data: dict, **_: object) -> None:
        if not data:
            raise ValidationError("give at least one field to change", "_schema")


class PatientSchema(PatientRegistrationSchema):
    id = fields.String(attribute="_id")
    status = fields.String()
    registered_at = fields.AwareDateTime()
    clinician_id = fields.String(allow_none=True)


class ClinicianAssignmentSchema(Schema):
    clinician_id = fields.String(required=True, validate=validate.Length(min=1, max=100))


class EligibilitySchema(Schema):
    patient_id = fields.String()
    eligible = fields.Boolean()
    reasons = fields.List(fields.String())
    rules_version = fields.String()
    state = fields.String()
    postal_code = fields.String()
    location = fields.Dict(allow_none=True)
    time_zone = fields.String()


class ScreeningSubmissionSchema(Schema):
    instrument = fields.String(required=True, validate=validate.Length(min=1, max=40))
    answers = fields.Dict(keys=fields.String(), values=fields.Raw(), required=True)


class ScreeningSchema(Schema):
    """A kept submission, for clinicians: answers and scores."""

    id = fields.String()
    patient_id = fields.String()
    instrument = fields.String()
    instruments_version = fields.String()
    answers = fields.Dict(keys=fields.String(), values=fields.Integer())
    total = fields.Integer(allow_none=True)
    band = fields.String(allow_none=True)
    cut_off_met = fields.Boolean(allow_none=True)
    risk_items = fields.List(fields.String())
    submitted_at = fields.AwareDateTime()


class PatientScreeningSchema(Schema):
    """A kept submission as the patient sees it: that it was received, no scores or decision."""

    id = fields.String()
    patient_id = fields.String()
    instrument = fields.String()
    submitted_at = fields.AwareDateTime()


class CrisisResourceSchema(Schema):
    name = fields.String()
    contact = fields.String()
    text = fields.String()


class ScreeningReceiptSchema(PatientScreeningSchema):
    """The answer to a submission: a next step, and crisis resources instead of any decision after a risk answer."""

    message = fields.String()
    crisis_resources = fields.List(fields.Nested(CrisisResourceSchema))


class ConsentSchema(Schema):
    id = fields.String()
    patient_id = fields.String()
    document_version = fields.String()
    signed_at = fields.AwareDateTime()
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    revoked_at = fields.AwareDateTime(allow_none=True)


class ConsentDocumentSchema(Schema):
    version = fields.String()
    effective_from = fields.AwareDateTime()
    title = fields.String()
    text = fields.String()


class ReferralResultSchema(Schema):
    id = fields.String()
    patient_id = fields.String()
    kind = fields.String()
    clinician_name = fields.String()
    npi = fields.String()
    icd10_codes = fields.List(fields.String())
    document_reference = fields.String()
    recorded_by = fields.String()
    recorded_at = fields.AwareDateTime()


class ReviewSchema(Schema):
    id = fields.String()
    patient_id = fields.String()
    clinician_id = fields.String(allow_none=True)
    urgent = fields.Boolean()
    reasons = fields.List(fields.String())
    status = fields.String()
    opened_at = fields.AwareDateTime()
    decided_at = fields.AwareDateTime(allow_none=True)
    decided_by = fields.String(allow_none=True)
    decision = fields.Dict(allow_none=True)


class ContraindicationDecisionSchema(Schema):
    rules_version = fields.String()
    outcome = fields.String()
    decided_at = fields.AwareDateTime()
    fired = fields.List(fields.Dict())


class ReviewFileSchema(Schema):
    """Everything a clinician's decision needs (opening it is audited by the gateway)."""

    review = fields.Nested(ReviewSchema)
    patient = fields.Nested(PatientSchema)
    screenings = fields.List(fields.Nested(ScreeningSchema))
    contraindications = fields.Nested(ContraindicationDecisionSchema, allow_none=True)
    consent = fields.String()
    consents = fields.List(fields.Nested(ConsentSchema))
    referrals = fields.List(fields.Nested(ReferralResultSchema))
    protocols = fields.List(fields.Dict())
    decline_reasons = fields.List(fields.String())


class EligibilityExplanationSchema(Schema):
    patient_id = fields.String()
    status = fields.String()
    eligible = fields.Boolean()
    reasons = fields.List(fields.String())
    explanations = fields.List(fields.Dict())
    rules_version = fields.String()
    crisis_resources = fields.List(fields.Nested(CrisisResourceSchema))
    contraindications = fields.Nested(ContraindicationDecisionSchema, allow_none=True)
    treatment_plan = fields.Dict(allow_none=True)


class SuperbillFactsSchema(Schema):
    patient_id = fields.String()
    name = fields.String()
    date_of_birth = fields.Date()
    address = fields.Nested(AddressSchema, only=("line1", "line2", "city", "state", "postal_code"))
    referring = fields.Dict(allow_none=True)
    icd10_codes = fields.List(fields.String())
