"""From sign-up to cleared, end to end through the public API and every real process.

Eli signs up and may book only the free consultation; infusions are refused with the reason until he has
completed his questionnaires, signed the consent and his clinician has approved a treatment plan. Then he
books; when he withdraws his consent, booking is refused again at once. Fay answers a safety question "yes":
she is shown where to get help now, her review goes to the top of the queue, and she cannot book.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests

from chassis.testing import wait_for
from services.intake.walkthrough import STANDARD_PLAN, UNREMARKABLE_ANSWERS, VISIT_DETAILS
from services.scheduling.tests.examples import nurse_record

ELI = {
    "first_name": "Eli", "last_name": "Brooks", "email": "eli@example.com", "phone": "+13035550160",
    "date_of_birth": "1979-02-11",
    "address": {"line1": "1400 Larimer St", "city": "Denver", "state": "CO", "postal_code": "80202"},
    "time_zone": "America/Denver", "sms_opt_in": False, **VISIT_DETAILS,
}
CLINICIAN = "clin_rivera"


def day_at(days: int, hour_utc: int) -> str:
    day = datetime.now(UTC) + timedelta(days=days)
    return day.replace(hour=hour_utc, minute=0, second=0, microsecond=0).isoformat()


def refusal_reasons(response: requests.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "patient_not_cleared"
    return response.json()["reasons"]


def test_a_patient_books_infusions_only_once_screened_consented_and_approved_and_not_after_revoking(platform):
    url = platform.url
    admin, clinician = platform.token("admin", "ops-1"), platform.token("clinician", CLINICIAN)
    requests.put(f"{url}/v1/nurses/nur_dale", headers=admin,
                 json=nurse_record("Dale Kim, RN", ["CO"])).raise_for_status()
    signed_up = requests.post(f"{url}/v1/patients", json=ELI)
    assert signed_up.status_code == 201, signed_up.text
    eli_id = signed_up.json()["id"]
    eli = platform.token("patient", eli_id)

    def book(visit_type: str, start_at: str) -> requests.Response:
        return requests.post(f"{url}/v1/appointments", headers=eli,
                             json={"patient_id": eli_id, "visit_type": visit_type, "start_at": start_at})

    # Before anything: the free consultation yes, an infusion no, with every reason.
    assert book("consult", day_at(6, 16)).status_code == 201
    assert refusal_reasons(book("iv-mood", day_at(8, 16))) == ["screening_incomplete", "consent_missing",
                                                               "not_cleared"]

    # Questionnaires, then the consent (its version, Eli's address and browser are recorded).
    forms = requests.get(f"{url}/v1/questionnaires").json()
    assert set(forms["required"]) == set(UNREMARKABLE_ANSWERS)
    for instrument, answers in UNREMARKABLE_ANSWERS.items():
        receipt = requests.post(f"{url}/v1/patients/{eli_id}/screenings", headers=eli,
                                json={"instrument": instrument, "answers": answers})
        assert receipt.status_code == 201 and "crisis_resources" not in receipt.json(), receipt.text
    shown = requests.get(f"{url}/v1/patients/{eli_id}/eligibility", headers=eli).json()
    assert (shown["status"], shown["reasons"]) == ("screened", ["consent_missing", "not_cleared"])
    assert all(entry["text"] for entry in shown["explanations"])
    requests.put(f"{url}/v1/patients/{eli_id}/clinician", headers=admin,
                 json={"clinician_id": CLINICIAN}).raise_for_status()
    document = requests.get(f"{url}/v1/consent-documents/current").json()
    assert "off-label" in document["text"]
    consent = requests.post(f"{url}/v1/patients/{eli_id}/consents", json={"document_version": document["version"]},
                            headers={**eli, "User-Agent": "EliBrowser/1.0"})
    assert consent.status_code == 201, consent.text
    assert (consent.json()["ip"], consent.json()["user_agent"]) == ("127.0.0.1", "EliBrowser/1.0")

    # The review: in his clinician's queue, opened (audited), decided by his clinician only.
    queue = requests.get(f"{url}/v1/reviews", headers=clinician).json()["items"]
    assert [review["patient_id"] for review in queue] == [eli_id]
    review_id = queue[0]["id"]
    assert refusal_reasons(book("iv-mood", day_at(8, 16))) == ["review_pending", "not_cleared"]
    opened = requests.get(f"{url}/v1/reviews/{review_id}", headers=clinician).json()
    assert {s["instrument"] for s in opened["screenings"]} == set(UNREMARKABLE_ANSWERS)
    assert opened["consent"] == "current" and opened["patient"]["weight_kg"] == 70
    audit = requests.get(f"{url}/v1/audit", headers=admin, params={"resource": "review"}).json()["items"]
    assert any(entry["subject"] == CLINICIAN and entry["resource_id"] == review_id for entry in audit)
    approve = {"decision": "approve", "plan": STANDARD_PLAN}
    other = requests.post(f"{url}/v1/reviews/{review_id}/decision", json=approve,
                          headers=platform.token("clinician", "clin_other"))
    assert (other.status_code, other.json()["code"]) == (403, "not_responsible_clinician")
    assert other.json()["errors"][0]["field"] == "clinician"
    approved = requests.post(f"{url}/v1/reviews/{review_id}/decision", json=approve, headers=clinician)
    assert approved.status_code == 200 and approved.json()["status"] == "approved", approved.text
    again = requests.post(f"{url}/v1/reviews/{review_id}/decision", json=approve, headers=clinician)
    assert (again.status_code, again.json()["code"]) == (409, "review_already_decided")
    assert again.json()["errors"][0]["field"] == "review_id"

    booked = book("iv-mood", day_at(8, 16))
    assert booked.status_code == 201, booked.text
    for_clinician = requests.get(f"{url}/v1/patients/{eli_id}/eligibility", headers=clinician).json()
    assert for_clinician["eligible"] and for_clinician["treatment_plan"]["dose_mg"] == 35.0

    # He withdraws his consent: the next infusion is refused at once, the one booked is cancelled by the
    # clinic, and the free consultation stands.
    revoked = requests.delete(f"{url}/v1/patients/{eli_id}/consents/{consent.json()['id']}", headers=eli)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"], revoked.text
    assert refusal_reasons(book("iv-mood", day_at(9, 16))) == ["consent_revoked"]

    def status_of(appointment_id: str) -> str:
        return requests.get(f"{url}/v1/appointments/{appointment_id}", headers=eli).json()["status"]

    cancelled = wait_for(lambda: status_of(booked.json()["id"]) == "cancelled", timeout=30)
    assert cancelled
    shown = requests.get(f"{url}/v1/appointments/{booked.json()['id']}", headers=eli).json()
    assert shown["cancelled_by"] == "clinic"
    consultations = requests.get(f"{url}/v1/appointments", headers=eli, params={"patient_id": eli_id}).json()
    assert [a["status"] for a in consultations["items"] if a["visit_type"] == "consult"] == ["booked"]


def test_a_safety_answer_brings_help_now_an_urgent_review_and_no_booking(platform):
    url = platform.url
    admin = platform.token("admin", "ops-1")
    fay_id = requests.post(f"{url}/v1/patients", json={**ELI, "first_name": "Fay", "email": "fay@example.com"}
                           ).json()["id"]
    fay = platform.token("patient", fay_id)

    receipt = requests.post(f"{url}/v1/patients/{fay_id}/screenings", headers=fay, json={
        "instrument": "phq-9", "answers": {**UNREMARKABLE_ANSWERS["phq-9"], "phq9_9": 1}})

    assert receipt.status_code == 201, receipt.text
    assert any("988" in resource["contact"] for resource in receipt.json()["crisis_resources"])
    assert not {"total", "band", "status"} & set(receipt.json())
    queue = requests.get(f"{url}/v1/reviews", headers=admin).json()["items"]
    assert (queue[0]["patient_id"], queue[0]["urgent"]) == (fay_id, True)
    shown = requests.get(f"{url}/v1/patients/{fay_id}/eligibility", headers=fay).json()
    assert shown["reasons"] == ["urgent_review_open"] and shown["crisis_resources"]
    booking = requests.post(f"{url}/v1/appointments", headers=fay,
                            json={"patient_id": fay_id, "visit_type": "iv-mood", "start_at": day_at(10, 16)})
    assert "urgent_review_open" in refusal_reasons(booking)


def test_bad_clinical_input_is_a_4xx_naming_the_field_and_changes_nothing(platform):
    url = platform.url
    gus_id = requests.post(f"{url}/v1/patients", json={**ELI, "first_name": "Gus", "email": "gus@example.com"}
                           ).json()["id"]
    gus = platform.token("patient", gus_id)

    def post(path: str, body: dict) -> requests.Response:
        return requests.post(f"{url}/v1/patients/{gus_id}/{path}", headers=gus, json=body)

    cases = [
        (post("referrals", {"clinician_name": "Dr. X", "npi": "1234567890", "icd10_codes": ["F33.1"],
                            "document_reference": "r"}), 422, "npi"),
        (post("referrals", {"clinician_name": "Dr. X", "npi": "1234567893", "icd10_codes": ["depression"],
                            "document_reference": "r"}), 422, "icd10_codes"),
        (post("screenings", {"instrument": "gad-7", "answers": {"gad7_1": 1}}), 422, "answers.gad7_2"),
        (post("screenings", {"instrument": "gad-7", "answers": {f"gad7_{n}": 4 for n in range(1, 8)}}), 422,
         "answers.gad7_1"),
        (post("screenings", {"instrument": "madrs", "answers": {}}), 404, "instrument"),
        (post("consents", {"document_version": "1999-01-01"}), 422, "document_version"),
    ]
    for response, status, field in cases:
        assert response.status_code == status, response.text
        if field:
            assert field in {error["field"] for error in response.json()["errors"]}, response.text
    heavy = requests.post(f"{url}/v1/patients", json={**ELI, "email": "heavy@example.com", "weight_kg": 301})
    assert heavy.status_code == 422 and heavy.json()["errors"][0]["field"] == "weight_kg"
    history = requests.get(f"{url}/v1/patients/{gus_id}/screenings", headers=gus).json()["items"]
    assert history == []
    again = requests.post(f"{url}/v1/patients", json={**ELI, "first_name": "Mallory", "email": "GUS@example.com"})
    assert again.status_code == 409 and "Gus" not in again.text and gus_id not in again.text
