"""A patient's first booking, end to end, through the public API and every real process.

Dana signs up on the website, books a home visit for next week, and then sees her appointment, the
invoice billing priced from the catalogue, and the confirmation notifications recorded for her.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import requests

from chassis.testing import wait_for
from services.intake.walkthrough import VISIT_DETAILS, clear_over_http
from services.scheduling.tests.examples import nurse_record

DANA = {
    "first_name": "Dana", "last_name": "Rivera", "email": "dana@example.com", "phone": "+13035550142",
    "date_of_birth": "1987-06-15",
    "address": {"line1": "1600 Glenarm Pl", "city": "Denver", "state": "CO", "postal_code": "80202"},
    "time_zone": "America/Denver", "sms_opt_in": True, **VISIT_DETAILS,
}


def next_week_at(hour_utc: int) -> str:
    day = datetime.now(UTC) + timedelta(days=7)
    return day.replace(hour=hour_utc, minute=0, second=0, microsecond=0).isoformat()


def test_the_platform_reports_itself_healthy_and_ready(platform):
    health = requests.get(f"{platform.url}/health").json()
    assert health == {"status": "ok", "checks": {"broker": "ok", "store": "ok"}}
    ready = requests.get(f"{platform.url}/ready").json()
    assert ready["status"] == "ok" and set(ready["checks"]) >= {"intake", "scheduling", "billing", "notifications"}


def test_a_patient_registers_books_and_sees_her_appointment_invoice_and_confirmation(platform):
    admin = platform.token("admin", "ops-1")
    assert requests.put(f"{platform.url}/v1/nurses/nur_avery", headers=admin,
                        json=nurse_record("Avery Chen, RN", ["CO"])).status_code == 200

    registered = requests.post(f"{platform.url}/v1/patients", json=DANA, headers={"Idempotency-Key": "dana-signup"})
    assert registered.status_code == 201, registered.text
    dana_id = registered.json()["id"]
    dana = platform.token("patient", dana_id)
    clear_over_http(platform.url, dana_id, dana, admin)  # screened, consented, approved by a clinician

    booking = requests.post(f"{platform.url}/v1/appointments", headers={**dana, "X-Request-ID": "journey-dana-1"},
                            json={"patient_id": dana_id, "visit_type": "iv-mood", "start_at": next_week_at(17)})
    assert booking.status_code == 201, booking.text
    assert booking.headers["X-Request-ID"] == "journey-dana-1"
    appointment = booking.json()
    assert appointment["nurse_id"] == "nur_avery"
    assert appointment["local_start"].endswith("10:00:00-07:00")  # 17:00 UTC is 10:00 in Denver in winter

    shown = requests.get(f"{platform.url}/v1/appointments/{appointment['id']}", headers=dana)
    assert shown.status_code == 200 and shown.json()["status"] == "booked"

    invoices = wait_for(lambda: requests.get(f"{platform.url}/v1/invoices", headers=dana,
                                             params={"appointment_id": appointment["id"]}).json()["items"])
    assert len(invoices) == 1
    invoice = invoices[0]
    assert (invoice["currency"], invoice["total_cents"], invoice["status"]) == ("usd", 60000, "open")
    assert 40000 <= invoice["total_cents"] <= 200000  # an IV dose costs $400 to $2,000

    def messages():
        found = requests.get(f"{platform.url}/v1/patients/{dana_id}/notifications", headers=dana).json()["items"]
        found = [m for m in found if m["kind"] in ("appointment.booked", "invoice.created")]  # not the welcome
        return found if len(found) == 3 else None

    recorded = wait_for(messages)
    by_channel = {(m["kind"], m["channel"]): m for m in recorded}
    assert set(by_channel) == {("appointment.booked", "email"), ("appointment.booked", "sms"),
                               ("invoice.created", "email")}
    text = by_channel[("appointment.booked", "sms")]["body"]
    assert "10:00 AM MST" in text
    assert not {"ketamine", "infusion", "iv", "depression"} & set(text.lower().replace(".", " ").split())

    # The request id followed the booking through RPC and the event into billing's logs.
    billing_lines = [json.loads(line) for line in platform.log_path("billing").read_text().splitlines()
                     if line.startswith("{")]
    assert any(line.get("correlation_id") == "journey-dana-1" and "invoice" in line["message"]
               for line in billing_lines)


def test_a_visit_booked_while_billing_is_down_is_invoiced_when_billing_comes_back(platform):
    admin = platform.token("admin", "ops-1")
    requests.put(f"{platform.url}/v1/nurses/nur_blake", headers=admin,
                 json=nurse_record("Blake Ortiz, RN", ["CO"])).raise_for_status()
    patient = requests.post(f"{platform.url}/v1/patients", json={**DANA, "email": "sam@example.com"})
    patient_id = patient.json()["id"]
    clear_over_http(platform.url, patient_id, platform.token("patient", patient_id), admin)

    platform.kill("billing")  # no graceful stop: as if the machine died
    booking = requests.post(f"{platform.url}/v1/appointments", headers=platform.token("patient", patient_id),
                            json={"patient_id": patient_id, "visit_type": "iv-pain", "start_at": next_week_at(16)})
    assert booking.status_code == 201, booking.text
    platform.start("billing")
    finance = platform.token("finance", "fin-1")
    invoices = wait_for(lambda: requests.get(f"{platform.url}/v1/invoices", headers=finance,
                                             params={"appointment_id": booking.json()["id"]}).json()["items"],
                        timeout=30)
    assert invoices[0]["total_cents"] == 100000
