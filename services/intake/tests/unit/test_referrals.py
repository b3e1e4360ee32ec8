"""Referral checks: the NPI's Luhn check digit (with the 80840 prefix) and the shape of ICD-10-CM codes."""

import pytest

from chassis.errors import InvalidInput
from chassis.service import validated
from services.intake.referrals import ReferralSchema, icd10_cm_shaped, npi_valid


@pytest.mark.parametrize(("npi", "valid"), [
    ("1234567893", True),  # the CMS worked example: check digit 3
    ("1245319599", True),
    ("1234567890", False),  # wrong check digit
    ("123456789", False),  # nine digits
    ("12345678931", False),  # eleven
    ("12345678A3", False),
    ("", False),
])
def test_an_npi_is_ten_digits_ending_with_its_luhn_check_digit(npi, valid):
    assert npi_valid(npi) is valid


@pytest.mark.parametrize(("code", "shaped"), [
    ("F33.1", True), ("F43.10", True), ("F41.1", True), ("G90.50", True), ("U09.9", True), ("F32A", True),
    ("S72.001A", True), ("F33", True),
    ("f33.1", False), ("33.1", False), ("F3", False), ("FF3.1", False), ("F33.12345", False), ("F33.", False),
    ("F33-1", False), ("F33.1A2B3", False),
])
def test_an_icd10_cm_code_is_a_letter_a_digit_a_digit_or_letter_and_an_optional_extension(code, shaped):
    assert icd10_cm_shaped(code) is shaped


def a_referral(**changes) -> dict:
    return {"clinician_name": "Dr. Ada Park", "npi": "1234567893", "icd10_codes": ["F33.1"],
            "document_reference": "upload/ref-1.pdf", **changes}


def test_a_complete_referral_is_accepted_as_a_referral_by_default():
    assert validated(ReferralSchema(), a_referral())["kind"] == "referral"


@pytest.mark.parametrize(("changes", "field"), [
    ({"npi": "1234567890"}, "npi"),
    ({"icd10_codes": ["F33.1", "depression"]}, "icd10_codes"),
    ({"icd10_codes": []}, "icd10_codes"),
    ({"kind": "hearsay"}, "kind"),
    ({"document_reference": ""}, "document_reference"),
])
def test_a_wrong_referral_is_refused_naming_the_field(changes, field):
    with pytest.raises(InvalidInput) as refused:
        validated(ReferralSchema(), a_referral(**changes))
    assert list(refused.value.details["errors"]) == [field]
