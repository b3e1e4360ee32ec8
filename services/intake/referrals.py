"""Referrals (or a telehealth evaluation by one of our clinicians): NPI and ICD-10-CM checks."""

from __future__ import annotations

import re

from marshmallow import Schema, ValidationError, fields, validate, validates

NPI_PREFIX = "80840"  # the card issuer prefix NPIs are Luhn-checked with (CMS NPI check digit standard)
ICD10_CM = re.compile(r"^[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?$")
KINDS = ("referral", "telehealth_evaluation")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def npi_valid(npi: str) -> bool:
    """Ten digits whose last is the Luhn check digit of ``80840`` + the first nine."""
    return bool(re.fullmatch(r"\d{10}", npi)) and luhn_valid(NPI_PREFIX + npi)


def icd10_cm_shaped(code: str) -> bool:
    """A letter, a digit, a digit or letter, then optionally 1 to 4 digits or letters, after a dot or not (F33.1,
    F43.10, F32A)."""
    return bool(ICD10_CM.fullmatch(code))


class ReferralSchema(Schema):
    kind = fields.String(load_default="referral", validate=validate.OneOf(KINDS))
    clinician_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    npi = fields.String(required=True)
    icd10_codes = fields.List(fields.String(), required=True, validate=validate.Length(min=1, max=12))
    document_reference = fields.String(required=True, validate=validate.Length(min=1, max=500))

    @validates("npi")
    def _npi(self, value: str, **_: object) -> None:
        if not npi_valid(value):
            raise ValidationError("not a valid NPI (10 digits with the NPI check digit)")

    @validates("icd10_codes")
    def _icd10(self, value: list[str], **_: object) -> None:
        wrong = [code for code in value if not icd10_cm_shaped(code)]
        if wrong:
            raise ValidationError(f"not ICD-10-CM codes (letter, digit, digit or letter, optional dot and up to "
                                  f"4 more): {wrong}")
