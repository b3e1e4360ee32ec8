"""A paid home visit, end to end through the public API, every real process and the Stripe stand-in.

Mia finds a free time, holds it (with billing's quote), pays the deposit with a card, and the hold becomes her
appointment. On the day the nurse records the visit step by step; at its completion billing charges the
balance off-session on the card saved with the deposit and settles the invoice, and Mia downloads her receipt.
Kai's visit is aborted at the pre-dose checks (he ate two hours before): the policy keeps its fee from his
deposit and refunds the rest. Both are told, and the ledger balances (the autouse fixture in conftest).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from chassis.testing import wait_for
from services.intake.walkthrough import clear_over_http
from services.scheduling.tests.examples import nurse_record
from tests.test_patient_journey import DANA

GOOD_VITALS = {"systolic": 126, "diastolic": 80, "heart_rate": 74, "spo2": 98}
PRE_CHECKS = {"fasting_hours": 6, "escort_present": True, "consent_reconfirmed": True, "pregnancy_possible": False,
              "weight_kg": 70, "baseline": GOOD_VITALS}


@pytest.fixture(scope="module")
def nurse(platform):
    admin = platform.token("admin", "ops-1")
    requests.put(f"{platform.url}/v1/nurses/nur_ines", headers=admin,
                 json=nurse_record("Ines Park, RN", ["CO"])).raise_for_status()
    return "nur_ines", platform.token("nurse", "nur_ines")


def cleared_patient(platform, first_name: str) -> tuple[str, dict[str, str]]:
    registered = requests.post(f"{platform.url}/v1/patients", json={
        **DANA, "first_name": first_name, "email": f"{first_name.lower()}.paid@example.com"})
    assert registered.status_code == 201, registered.text
    patient_id = registered.json()["id"]
    patient = platform.token("patient", patient_id)
    clear_over_http(platform.url, patient_id, patient, platform.token("admin", "ops-1"))
    return patient_id, patient


def held_and_paid(platform, patient_id: str, patient: dict[str, str], nurse_id: str, days_ahead: int) -> dict:
    """A free time from the availability search, held and its deposit paid: the hold once it is booked."""
    day = (datetime.now(UTC) + timedelta(days=days_ahead)).date()
    free = requests.get(f"{platform.url}/v1/availability", headers=patient, params={
        "patient_id": patient_id, "visit_type": "iv-mood", "from": day.isoformat(), "to": day.isoformat(),
        "nurse_id": nurse_id})
    assert free.status_code == 200, free.text
    start_at = free.json()["slots"][0]["start_at"]
    held = requests.post(f"{platform.url}/v1/holds", headers={**patient, "Idempotency-Key": f"hold-{patient_id}"},
                         json={"patient_id": patient_id, "visit_type": "iv-mood", "start_at": start_at,
                               "nurse_id": nurse_id})
    assert held.status_code == 201, held.text
    hold = held.json()
    paid = requests.post(f"{platform.url}/v1/holds/{hold['id']}/deposit",
                         headers={**patient, "Idempotency-Key": f"deposit-{hold['id']}"},
                         json={"payment_method_id": "pm_card_visa"})
    assert paid.status_code == 200, paid.text
    assert (paid.json()["status"], paid.json()["amount_cents"]) == ("succeeded", hold["quote"]["deposit_cents"])

    def booked():
        shown = requests.get(f"{platform.url}/v1/holds/{hold['id']}", headers=patient).json()
        return shown if shown["status"] == "booked" else None

    return {**hold, **wait_for(booked, timeout=30)}


def record(platform, visit_id: str, nurse: dict[str, str], step: str, **fields) -> requests.Response:
    return requests.post(f"{platform.url}/v1/visits/{visit_id}/events", headers=nurse,
                         json={"step": step, **fields})


def arrive(platform, visit_id: str, nurse: dict[str, str]) -> None:
    now = datetime.now(UTC)
    for step, fields in [("en_route", {"arrival_from": now.isoformat(),
                                       "arrival_to": (now + timedelta(minutes=30)).isoformat()}),
                         ("arrived", {})]:
        answer = record(platform, visit_id, nurse, step, **fields)
        assert answer.status_code == 200, answer.text


def invoice_of(platform, appointment_id: str, headers: dict[str, str], status: str) -> dict:
    def reached():
        items = requests.get(f"{platform.url}/v1/invoices", headers=headers,
                             params={"appointment_id": appointment_id}).json()["items"]
        return items[0] if items and items[0]["status"] == status else None

    found = wait_for(reached, timeout=30)
    return requests.get(f"{platform.url}/v1/invoices/{found['id']}", headers=headers).json()


def kinds_sent_to(platform, patient_id: str, headers: dict[str, str], wanted: set[str]) -> set[str]:
    def all_there():
        items = requests.get(f"{platform.url}/v1/patients/{patient_id}/notifications", headers=headers,
                             params={"limit": 100}).json()["items"]
        kinds = {m["kind"] for m in items}
        return kinds if wanted <= kinds else None

    return wait_for(all_there, timeout=30)


def test_hold_deposit_booking_visit_balance_charged_and_receipt(platform, nurse):
    nurse_id, nurse_token = nurse
    mia_id, mia = cleared_patient(platform, "Mia")
    hold = held_and_paid(platform, mia_id, mia, nurse_id, days_ahead=8)
    visit_id = hold["appointment_id"]
    quote = hold["quote"]
    assert quote["deposit_cents"] < quote["total_cents"]

    arrive(platform, visit_id, nurse_token)
    for step, fields in [("pre_checks", {"pre_checks": PRE_CHECKS}), ("started", {}),
                         ("completed", {"infusion_minutes": 45}),
                         ("discharged", {"escort_present": True, "post_care_instructions_given": True})]:
        answer = record(platform, visit_id, nurse_token, step, **fields)
        assert answer.status_code == 200, answer.text
    again = record(platform, visit_id, nurse_token, "completed", infusion_minutes=45)
    assert again.status_code == 409 and again.json()["code"] == "illegal_visit_step"

    invoice = invoice_of(platform, visit_id, mia, "settled")
    assert invoice["total_cents"] == quote["total_cents"]  # the price quoted at the hold
    assert invoice["amount_due_cents"] == 0
    assert sorted(p["amount_cents"] for p in invoice["payments"]) == sorted(
        [quote["deposit_cents"], quote["total_cents"] - quote["deposit_cents"]])
    balance = requests.get(f"{platform.url}/v1/patients/{mia_id}/balance", headers=mia).json()
    assert (balance["balance_cents"], balance["deposits_held_cents"]) == (0, 0)

    receipt = requests.get(f"{platform.url}/v1/invoices/{invoice['id']}/receipt.pdf", headers=mia)
    assert receipt.status_code == 200, receipt.text
    assert receipt.headers["Content-Type"].startswith("application/pdf") and receipt.content.startswith(b"%PDF")

    told = kinds_sent_to(platform, mia_id, mia, {"hold.placed", "deposit.paid", "appointment.booked",
                                                 "visit.en_route", "reminder.after_care", "payment.succeeded"})
    assert "payment.failed" not in told


def test_a_visit_aborted_at_the_pre_dose_checks_keeps_the_fee_and_refunds_the_rest(platform, nurse):
    nurse_id, nurse_token = nurse
    kai_id, kai = cleared_patient(platform, "Kai")
    hold = held_and_paid(platform, kai_id, kai, nurse_id, days_ahead=9)
    visit_id = hold["appointment_id"]

    arrive(platform, visit_id, nurse_token)
    checked = record(platform, visit_id, nurse_token, "pre_checks", pre_checks={**PRE_CHECKS, "fasting_hours": 2})
    assert checked.status_code == 200, checked.text
    assert checked.json()["status"] == "aborted"
    started = record(platform, visit_id, nurse_token, "started")
    assert started.status_code == 409

    invoice = invoice_of(platform, visit_id, kai, "called_off")
    refunded = wait_for(lambda: requests.get(f"{platform.url}/v1/invoices/{invoice['id']}", headers=kai
                                             ).json()["refunds"] or None, timeout=30)
    kept = hold["quote"]["deposit_cents"] - sum(r["amount_cents"] for r in refunded)
    assert kept == invoice["fee_cents"] > 0  # not fasting is the patient's: charged as a late cancellation
    kinds_sent_to(platform, kai_id, kai, {"fee.charged", "refund.issued"})
