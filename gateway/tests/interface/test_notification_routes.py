"""A patient's message preferences, and texts coming back from patients: the SMS provider posts them as a form,
signed the way Twilio signs (HMAC-SHA1 over the URL and the sorted fields); STOP stops every text to that
number, START resumes them, HELP is answered. Anything unsigned, wrongly signed or malformed changes nothing."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from chassis.testing import wait_for
from gateway.signatures import twilio_signature
from gateway.tests.interface.support import assert_problem, bearer

AUTH_TOKEN = "twilio-auth-token-for-tests"
PHONE = "+13035550142"  # the phone of support.registration()


@pytest.fixture(scope="module")
def gateway_settings():
    return {"WEBHOOK_SECRETS": {"smsWebhook": AUTH_TOKEN}}


@pytest.fixture(scope="module")
def patient(platform):
    patient_id = platform.register()
    own = bearer("patient", patient_id)
    wait_for(lambda: platform.get(f"/v1/patients/{patient_id}/notification-preferences", headers=own)
             .status_code == 200)  # notifications has the contact
    return patient_id


def text_in(platform, body: str, token: str = AUTH_TOKEN, tamper: bool = False, sender: str = PHONE):
    form = {"From": sender, "To": "+13035550000", "Body": body, "MessageSid": "SM1", "AccountSid": "AC1"}
    signature = twilio_signature(platform.url + "/v1/webhooks/sms", form, token)
    if tamper:
        form["Body"] = "START"
    return platform.post("/v1/webhooks/sms", data=urlencode(form), headers={
        "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"})


def preferences(platform, patient_id: str) -> dict:
    answer = platform.get(f"/v1/patients/{patient_id}/notification-preferences",
                          headers=bearer("patient", patient_id))
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_stop_start_and_help_by_text(platform, patient):
    stopped = text_in(platform, "STOP")
    assert stopped.status_code == 200, stopped.text
    assert stopped.headers["Content-Type"].startswith("text/xml")
    assert preferences(platform, patient)["sms_stopped"] is True

    helped = text_in(platform, "help")
    assert "<Message>" in helped.text and "911" in helped.text

    assert text_in(platform, "Start").status_code == 200
    assert preferences(platform, patient)["sms_stopped"] is False


@pytest.mark.parametrize("how", ["other token", "tampered field", "no signature", "json body", "not a form"])
def test_an_unsigned_wrongly_signed_or_malformed_text_changes_nothing(platform, patient, how):
    if how == "no signature":
        answer = platform.post("/v1/webhooks/sms", data=urlencode({"From": PHONE, "Body": "STOP"}),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    elif how == "json body":
        answer = platform.post("/v1/webhooks/sms", json={"From": PHONE, "Body": "STOP"})
    elif how == "not a form":
        body = "%%%=%"
        answer = platform.post("/v1/webhooks/sms", data=body, headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(platform.url + "/v1/webhooks/sms", {}, AUTH_TOKEN)})
    else:
        answer = text_in(platform, "STOP", token="other" if how == "other token" else AUTH_TOKEN,
                         tamper=how == "tampered field")
    assert_problem(answer, 415 if how == "json body" else 401)
    assert preferences(platform, patient)["sms_stopped"] is False


def test_a_signed_text_without_its_fields_is_refused_naming_them(platform):
    form = {"To": "+13035550000"}
    answer = platform.post("/v1/webhooks/sms", data=urlencode(form), headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(platform.url + "/v1/webhooks/sms", form, AUTH_TOKEN)})
    problem = assert_problem(answer, 422)
    assert {e["field"] for e in problem["errors"]} == {"From", "Body"}


def test_a_patient_switches_categories_per_channel(platform, patient):
    answer = platform.put(f"/v1/patients/{patient}/notification-preferences", headers=bearer("patient", patient),
                          json={"sms": {"reminders": False}, "email": {"offers": False}})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["sms"]["reminders"], answer.json()["email"]["offers"]) == (False, False)
    assert answer.json()["email"]["reminders"] is True
    assert preferences(platform, patient)["sms"]["reminders"] is False


@pytest.mark.parametrize(("body", "field"), [
    ({"sms": {"birthdays": False}}, "sms.birthdays"),
    ({"email": {"reminder.after_care": False}}, "email.reminder.after_care"),
    ({"sms": {"safety": False}}, "sms.safety"),
    ({"sms": {"reminders": "no"}}, "sms.reminders"),
    ({"fax": {"reminders": False}}, "fax"),
])
def test_unknown_or_invalid_preferences_are_refused_naming_the_field(platform, patient, body, field):
    answer = platform.put(f"/v1/patients/{patient}/notification-preferences", headers=bearer("patient", patient),
                          json=body)
    problem = assert_problem(answer, 422)
    assert field in {e["field"] for e in problem["errors"]}


def test_a_patient_cannot_change_another_patients_preferences(platform, patient):
    answer = platform.put(f"/v1/patients/{patient}/notification-preferences",
                          headers=bearer("patient", "pat_someone_else"), json={"sms": {"reminders": False}})
    assert_problem(answer, 403)


def test_a_patient_switches_off_one_message_kind(platform, patient):
    answer = platform.put(f"/v1/patients/{patient}/notification-preferences", headers=bearer("patient", patient),
                          json={"sms": {"reminder.fasting": False}})
    assert answer.status_code == 200, answer.text
    assert preferences(platform, patient)["sms"]["reminder.fasting"] is False
