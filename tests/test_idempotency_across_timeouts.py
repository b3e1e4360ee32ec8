"""A booking whose answer is lost to a timeout, retried with the same key, books once and is invoiced once.

Scheduling commits the appointment and then stalls (a fault hook: it sleeps 3 s after the insert) while the
gateway gives up after ``RPC_TIMEOUT_SECONDS`` = 1 and answers 504. The key stays pending: a retry while its
lease runs is told to wait (409 with Retry-After); once the lease is over the retry runs the booking again,
with the same operation key, and scheduling answers with the appointment the first attempt booked.
"""

from __future__ import annotations

import os
import time
import uuid
from urllib.parse import quote

import pytest
import requests

from chassis.testing import fresh_databases, wait_for
from services.intake.walkthrough import clear_over_http
from services.scheduling.tests.examples import nurse_record
from tests.conftest import JWT_SECRET, EndToEndPlatform, free_port
from tests.test_patient_journey import DANA, next_week_at

LEASE_SECONDS = 2


@pytest.fixture(scope="module")
def stalling_platform(vhost, mongo_uri, tmp_path_factory):
    """The platform with scheduling stalling after each appointment insert (its own, so the fault stays here)."""
    with fresh_databases(mongo_uri, tag="t") as prefix:
        env = {**os.environ, "AMQP_URI": f"pyamqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}",
               "MONGO_URI": mongo_uri, "DATABASE_PREFIX": prefix, "GATEWAY_ADDRESS": f"127.0.0.1:{free_port()}",
               "JWT_SECRET": JWT_SECRET, "OUTBOX_POLL_SECONDS": "0.3", "LOG_LEVEL": "INFO",
               "INFUSION_FAULTS": "after_insert:appointments:sleep=3", "RPC_TIMEOUT_SECONDS": "1",
               "IDEMPOTENCY_LEASE_SECONDS": str(LEASE_SECONDS)}
        platform = EndToEndPlatform(env, tmp_path_factory.mktemp("stalling-logs"))
        platform.start_all()
        try:
            platform.wait_until_ready()
            platform.prefix = prefix
            yield platform
        finally:
            platform.stop()


def test_a_booking_that_timed_out_retried_with_its_key_books_once_and_is_invoiced_once(stalling_platform, mongo_client):
    url = stalling_platform.url
    admin = stalling_platform.token("admin", "ops-1")
    for nurse in ("nur_first", "nur_second"):  # the old gateway's retry booked the second nurse
        requests.put(f"{url}/v1/nurses/{nurse}", headers=admin,
                     json=nurse_record(f"Nurse {nurse}")).raise_for_status()
    patient = requests.post(f"{url}/v1/patients", json=DANA)
    assert patient.status_code == 201, patient.text
    patient_id = patient.json()["id"]
    clear_over_http(url, patient_id, stalling_platform.token("patient", patient_id), admin)
    headers = {**stalling_platform.token("patient", patient_id), "Idempotency-Key": f"book-{uuid.uuid4().hex}"}
    body = {"patient_id": patient_id, "visit_type": "iv-mood", "start_at": next_week_at(17)}

    first = requests.post(f"{url}/v1/appointments", headers=headers, json=body, timeout=30)
    assert first.status_code == 504, first.text

    retries = []
    for _ in range(20):
        retry = requests.post(f"{url}/v1/appointments", headers=headers, json=body, timeout=30)
        retries.append(retry)
        if retry.status_code != 409:
            break
        assert retry.json()["code"] == "request_in_progress", retry.text
        time.sleep(int(retry.headers["Retry-After"]))
    answer = retries[-1]
    assert answer.status_code == 201, answer.text

    scheduling = mongo_client[stalling_platform.prefix + "scheduling"]
    stored = list(scheduling.appointments.find({"patient_id": patient_id}))
    assert [appointment["_id"] for appointment in stored] == [answer.json()["id"]]
    billing = mongo_client[stalling_platform.prefix + "billing"]
    wait_for(lambda: billing.invoices.count_documents({"patient_id": patient_id}) >= 1)
    wait_for(lambda: not scheduling.appointments.find_one({"patient_id": patient_id, "outbox.0": {"$exists": True}}))
    assert billing.invoices.count_documents({"patient_id": patient_id}) == 1
