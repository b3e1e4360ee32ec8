"""Intake rules as plain functions: who may book a home visit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import Schema, fields, validate

from chassis.config import ConfigVersion


class BookingRulesSchema(Schema):
    minimum_age_years = fields.Integer(required=True, validate=validate.Range(min=0, max=120))
    operating_states = fields.List(fields.String(validate=validate.Regexp(r"^[A-Z]{2}$")), required=True)


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


def booking_eligibility(patient: dict[str, Any], rules: ConfigVersion, today: date) -> Eligibility:
    """Whether a registered patient may book a home visit, and every reason if not.

    Reasons are stable codes the website can explain: ``under_minimum_age``, ``state_not_served``.
    Screening, consent and clinician review add their own reasons as they are built.
    """
    reasons = []
    if age_on(patient["date_of_birth"], today) < rules["minimum_age_years"]:
        reasons.append("under_minimum_age")
    if patient["address"]["state"] not in rules["operating_states"]:
        reasons.append("state_not_served")
    return Eligibility(eligible=not reasons, reasons=reasons, rules_version=rules.version)
