"""What a registration must contain before intake stores anything.

Every refusal is an ``InvalidInput`` naming each bad field, so the website can point at it. Fields the
schema does not know are refused rather than ignored, and an operator object where a string belongs
(``{"$gt": ""}``, the classic NoSQL injection) is refused as not a string.
"""

import copy
from datetime import date

import pytest

from chassis.errors import InvalidInput
from chassis.service import validated
from services.intake.schemas import PatientRegistrationSchema
from services.intake.walkthrough import VISIT_DETAILS

REGISTRATION = {
    "first_name": "Ana", "last_name": "Diaz", "email": "ana@example.com", "phone": "+13035550100",
    "date_of_birth": "1985-04-02",
    "address": {"line1": "1 Main St", "city": "Denver", "state": "CO", "postal_code": "80202"},
    "time_zone": "America/Denver", "sms_opt_in": True, **VISIT_DETAILS,
}


def registration_with(path: str, value=...) -> dict:
    """The valid registration with one field (``address.state``) changed, or removed when no value."""
    changed = copy.deepcopy(REGISTRATION)
    *parents, leaf = path.split(".")
    target = changed
    for key in parents:
        target = target[key]
    if value is ...:
        del target[leaf]
    else:
        target[leaf] = value
    return changed


def errors_of(registration) -> dict:
    with pytest.raises(InvalidInput) as refused:
        validated(PatientRegistrationSchema(), registration)
    assert refused.value.status == 422 and refused.value.code == "invalid_input"
    return refused.value.details["errors"]


def errors_around(errors: dict, path: str) -> dict:
    """The errors of the object holding the field at ``path`` (``address.state`` -> the address's)."""
    for key in path.split(".")[:-1]:
        errors = errors[key]
    return errors


def test_a_complete_registration_is_accepted():
    patient = validated(PatientRegistrationSchema(), REGISTRATION)
    assert patient["date_of_birth"] == date(1985, 4, 2)
    assert patient["address"]["state"] == "CO"


def test_the_address_is_placed_at_registration_from_the_offline_zip_code_table():
    placed = validated(PatientRegistrationSchema(), REGISTRATION)["address"]["location"]
    assert placed["latitude"] == pytest.approx(39.75, abs=0.05) and placed["longitude"] == pytest.approx(-104.99,
                                                                                                         abs=0.05)


def test_consent_to_texts_is_not_assumed():
    assert validated(PatientRegistrationSchema(), registration_with("sms_opt_in"))["sms_opt_in"] is False


@pytest.mark.parametrize("field", ["first_name", "last_name", "email", "phone", "date_of_birth", "address",
                                   "time_zone", "address.line1", "address.city", "address.state",
                                   "address.postal_code"])
def test_a_registration_missing_a_required_field_is_refused(field):
    errors = errors_around(errors_of(registration_with(field)), field)
    assert errors == {field.split(".")[-1]: ["Missing data for required field."]}


@pytest.mark.parametrize(("field", "value"), [
    ("email", "ana.example.com"),
    ("email", "ana@"),
    ("phone", "303-555-0100"),        # not E.164
    ("phone", "+1 303 555 0100"),
    ("phone", "+0123456789"),
    ("time_zone", "Mountain Time"),
    ("time_zone", "America/Gotham"),
    ("date_of_birth", "02/04/1985"),
    ("first_name", ""),
    ("sms_opt_in", "perhaps"),
])
def test_a_malformed_field_is_refused_and_named(field, value):
    assert list(errors_of(registration_with(field, value))) == [field]


@pytest.mark.parametrize(("path", "value"), [
    ("address.state", "Colorado"),
    ("address.state", "co"),
    ("address.postal_code", "8020"),
    ("address.postal_code", "00000"),  # the shape of a ZIP code, but none the table can place
])
def test_a_malformed_address_field_is_refused_and_named(path, value):
    errors = errors_of(registration_with(path, value))
    assert list(errors) == ["address"] and list(errors["address"]) == [path.split(".")[1]]


@pytest.mark.parametrize(("path", "value"), [
    ("ssn", "078-05-1120"),
    ("status", "cleared"),            # a patient may not clear themselves
    ("address.gate_code", "1234"),
])
def test_an_unknown_field_is_refused_not_ignored(path, value):
    errors = errors_around(errors_of(registration_with(path, value)), path)
    assert errors == {path.split(".")[-1]: ["Unknown field."]}


@pytest.mark.parametrize("path", ["first_name", "last_name", "email", "phone", "time_zone", "address.state",
                                  "address.city"])
def test_an_operator_object_in_a_string_field_is_refused(path):
    errors = errors_around(errors_of(registration_with(path, {"$gt": ""})), path)
    assert list(errors) == [path.split(".")[-1]]  # "Not a valid string." (an email: "Not a valid email")


@pytest.mark.parametrize("payload", [None, "ana@example.com", [REGISTRATION]])
def test_a_registration_that_is_not_an_object_is_refused(payload):
    assert errors_of(payload) == {"_schema": ["Invalid input type."]}


def test_every_bad_field_is_named_at_once():
    registration = registration_with("email", "nope")
    registration["phone"] = "555"
    registration["address"]["state"] = "Colorado"
    assert set(errors_of(registration)) == {"email", "phone", "address"}


@pytest.mark.parametrize("born", ["2999-01-01", "1850-06-01"])
def test_a_birth_date_in_the_future_or_before_1900_is_refused(born):
    assert list(errors_of(registration_with("date_of_birth", born))) == ["date_of_birth"]
