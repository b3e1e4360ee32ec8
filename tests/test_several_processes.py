"""Several processes of every service at once, as in production: the guarantees hold across processes.

Twelve patients ask for the same nurse at the same time through the gateway while two scheduling
processes answer; exactly one visit is booked, and with two billing and two notifications processes
consuming, that visit gets exactly one invoice and one confirmation per channel. Fifty patients holding the
same nurse and time through two scheduling processes place exactly one hold.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests

from chassis.testing import wait_for
from services.intake.walkthrough import clear_over_http
from services.scheduling.tests.examples import nurse_record
from tests.test_patient_journey import DANA


@pytest.fixture(scope="module")
def doubled(platform):
    for name in ("intake", "scheduling", "billing", "notifications"):
        platform.start(name, label=f"{name}-2")
    platform.wait_until_ready()
    return platform


def a_nurse_in_reno_and_patients(platform, nurse_id: str, count: int, prefix: str) -> list[str]:
    """One nurse based in Reno, Nevada, and ``count`` patients registered there (through the API)."""
    url = platform.url
    nurse = nurse_record(f"{nurse_id} RN", ["NV"], based_at="89501", time_zone="America/Los_Angeles")
    requests.put(f"{url}/v1/nurses/{nurse_id}", headers=platform.token("admin", "ops"), json=nurse).raise_for_status()
    nevada = {**DANA, "address": {**DANA["address"], "state": "NV", "city": "Reno", "postal_code": "89501"},
              "time_zone": "America/Los_Angeles"}
    patients = [requests.post(f"{url}/v1/patients", json={**nevada, "email": f"{prefix}{n}@example.com"}).json()["id"]
                for n in range(count)]
    admin = platform.token("admin", "ops")
    with ThreadPoolExecutor(max_workers=4) as pool:  # screened and cleared, so that they may book
        list(pool.map(lambda patient_id: clear_over_http(url, patient_id, platform.token("patient", patient_id),
                                                         admin), patients))
    return patients


def test_a_nurse_and_time_wanted_by_twelve_patients_is_booked_once_and_invoiced_once(doubled):
    url = doubled.url
    patients = a_nurse_in_reno_and_patients(doubled, "nur_solo", 12, "racer")
    start_at = (datetime.now(UTC) + timedelta(days=9)).replace(hour=18, minute=0, second=0, microsecond=0)

    def book(patient_id: str) -> requests.Response:
        return requests.post(f"{url}/v1/appointments", headers=doubled.token("patient", patient_id),
                             json={"patient_id": patient_id, "visit_type": "iv-mood",
                                   "start_at": start_at.isoformat(), "nurse_id": "nur_solo"})

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(book, patients))

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201] + [409] * 11, [answer.text for answer in answers if answer.status_code not in (201, 409)]
    assert {answer.json()["code"] for answer in answers if answer.status_code == 409} == {"slot_taken"}
    winner = next(answer.json() for answer in answers if answer.status_code == 201)

    finance = doubled.token("finance", "fin")
    invoices = wait_for(lambda: requests.get(f"{url}/v1/invoices", headers=finance,
                                             params={"appointment_id": winner["id"]}).json()["items"])
    own = doubled.token("patient", winner["patient_id"])

    def messages() -> list[tuple[str, str]]:
        found = requests.get(f"{url}/v1/patients/{winner['patient_id']}/notifications", headers=own).json()
        return [(m["kind"], m["channel"]) for m in found["items"]
                if m["kind"] in ("appointment.booked", "invoice.created")]  # not the welcome, screening, clearance

    wait_for(lambda: len(messages()) >= 3)
    assert sorted(messages()) == [("appointment.booked", "email"), ("appointment.booked", "sms"),
                                  ("invoice.created", "email")]  # each once, whichever process handled it
    assert len(requests.get(f"{url}/v1/invoices", headers=finance,
                            params={"appointment_id": winner["id"]}).json()["items"]) == len(invoices) == 1


def test_fifty_patients_holding_the_same_nurse_and_time_through_two_scheduling_processes_one_wins(doubled):
    """The hold's claim is the appointment's: the unique index on slot keys and the nurse-day revision decide,
    not a read before a write, so two processes answering fifty racing requests place exactly one hold."""
    url = doubled.url
    patients = a_nurse_in_reno_and_patients(doubled, "nur_race", 50, "holder")
    start_at = (datetime.now(UTC) + timedelta(days=10)).replace(hour=18, minute=0, second=0, microsecond=0)

    def hold(patient_id: str) -> requests.Response:
        return requests.post(f"{url}/v1/holds", headers=doubled.token("patient", patient_id), timeout=60,
                             json={"patient_id": patient_id, "visit_type": "iv-mood",
                                   "start_at": start_at.isoformat(), "nurse_id": "nur_race"})

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(hold, patients))

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201] + [409] * 49, [answer.text for answer in answers if answer.status_code not in (201, 409)]
    assert {answer.json()["code"] for answer in answers if answer.status_code == 409} == {"slot_taken"}
    winner = next(answer.json() for answer in answers if answer.status_code == 201)
    shown = requests.get(f"{url}/v1/holds/{winner['id']}", headers=doubled.token("patient", winner["patient_id"]))
    assert (shown.status_code, shown.json()["status"], shown.json()["nurse_id"]) == (200, "held", "nur_race")
