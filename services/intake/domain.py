"""Intake rules as plain functions: who may book a home visit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import Schema, fields, validate

from chassis.config import ConfigVersion
from services.intake.schemas import US_STATE_CODES


class BookingRulesSchema(Schema):
    minimum_age_years = fields.Integer(required=True, validate=validate.Range(min=0, max=120))
    operating_states = fields.List(fields.String(validate=validate.OneOf(sorted(US_STATE_CODES))), required=True)
    clearance_free_visit_types = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)
    referral_required = fields.Boolean(load_default=False)


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    reasons: list[str] = field(default_factory=list)
    rules_version: str = ""


def age_on(birth_date: date, today: date) -> int:
    before_birthday = (today.month, today.day) < (birth_date.month, birth_date.day)
    return today.year - birth_date.year - before_birthday


def today_where_they_live(time_zone: str, now: datetime) -> date:
    """The patient's own calendar date: an 18th birthday starts at midnight where they live, not in UTC."""
    return now.astimezone(ZoneInfo(time_zone)).date()


def needs_clearance(visit_type: str | None, rules: ConfigVersion) -> bool:
    """Every visit needs clinical clearance except the configured ones (the free consultation); a question
    without a visit type is about an infusion."""
    return visit_type not in rules["clearance_free_visit_types"]


def booking_eligibility(patient: dict[str, Any], rules: ConfigVersion, today: date,
                        clinical: list[str] | tuple[str, ...] = ()) -> Eligibility:
    """Whether a registered patient may book a home visit, and every reason if not.

    Reasons are stable codes the website can explain: ``under_minimum_age``, ``state_not_served``, then the
    clinical path's (``chart.clinical_reasons``) for visits that need clearance.
    """
    reasons = []
    if age_on(patient["date_of_birth"], today) < rules["minimum_age_years"]:
        reasons.append("under_minimum_age")
    if patient["address"]["state"] not in rules["operating_states"]:
        reasons.append("state_not_served")
    reasons += list(clinical)
    return Eligibility(eligible=not reasons, reasons=reasons, rules_version=rules.version)


#: Each reason code in words for the patient (no diagnosis, medication or rule named).
REASON_TEXTS = {
    "under_minimum_age": "Treatment is offered to adults only.",
    "state_not_served": "We do not offer home visits in your state yet.",
    "urgent_review_open": "A clinician will contact you soon about your answers. If you are in crisis, call or "
                          "text 988, or call 911.",
    "review_pending": "A clinician is reviewing your answers; we will let you know when it is done.",
    "declined": "Treatment at home is not a safe option for you. Please talk to your own doctor about other "
                "options.",
    "screening_incomplete": "Please complete your health questionnaires.",
    "consent_missing": "Please read and sign the consent form.",
    "consent_outdated": "Our consent form has changed: please read and sign the new version.",
    "consent_revoked": "You withdrew your consent; sign the consent form again to book treatment.",
    "referral_missing": "We need a referral from your doctor, or an evaluation by one of our clinicians.",
    "not_cleared": "A clinician must approve your treatment plan before you can book treatment.",
}
